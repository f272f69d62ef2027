from __future__ import annotations

import numpy as np
import pytest

from conftest import CAMERA_MATRIX, png_with_chunk
from reloblur.atomic import TEMP_PREFIX, atomic_open, remove_stale_temporaries
from reloblur.errors import ImageReadError
from reloblur.imaging.imageio import (
    encode_srgb,
    from_float,
    linear_to_srgb,
    png_declared_transfer,
    probe_image,
    read_image,
    srgb_to_linear,
    to_float,
    write_image,
)


@pytest.mark.parametrize("suffix", [".png", ".tif", ".tiff"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("shape", [(17, 23), (17, 23, 3), (17, 23, 4)])
def test_round_trip_is_lossless(tmp_path, suffix, dtype, shape):
    rng = np.random.default_rng(1)
    image = rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)
    path = tmp_path / f"img{suffix}"
    write_image(path, image)
    back = read_image(path)
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, image)
    info = probe_image(path)
    assert (info.width, info.height) == (23, 17)
    assert info.channels == (1 if len(shape) == 2 else shape[2])
    assert info.bit_depth == np.dtype(dtype).itemsize * 8


@pytest.mark.parametrize("compression", ["lzw", "zlib", "packbits", "opencv"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_compressed_tiff_as_cameras_write_it_is_read_exactly(tmp_path, compression, dtype):
    """Camera software and OpenCV (LZW by default) write compressed TIFF: the pixels come
    back exactly, RGB in RGB order, and the header probe agrees."""
    import cv2
    import tifffile

    rng = np.random.default_rng(2)
    image = rng.integers(0, np.iinfo(dtype).max, (19, 29, 3), dtype=dtype, endpoint=True)
    path = tmp_path / f"{compression}.tif"
    if compression == "opencv":
        assert cv2.imwrite(str(path), image[..., ::-1])  # OpenCV stores BGR arrays as RGB
    else:
        tifffile.imwrite(path, image, photometric="rgb", compression=compression)
    back = read_image(path)
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, image)
    info = probe_image(path)
    assert (info.width, info.height, info.channels) == (29, 19, 3)


def test_rgb_channel_order_survives_png(tmp_path):
    image = np.zeros((4, 4, 3), np.uint8)
    image[..., 0] = 200  # pure red
    write_image(tmp_path / "red.png", image)
    back = read_image(tmp_path / "red.png")
    assert back[0, 0].tolist() == [200, 0, 0]


def test_truncated_png_is_reported_with_its_path(tmp_path):
    image = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    path = tmp_path / "cut.png"
    write_image(path, image)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="cut.png.*truncated"):
        read_image(path)


def test_corrupted_png_crc_is_reported(tmp_path):
    path = tmp_path / "bad.png"
    write_image(path, np.full((8, 8), 7, np.uint8))
    data = bytearray(path.read_bytes())
    data[40] ^= 0xFF  # inside the first data chunk
    path.write_bytes(bytes(data))
    with pytest.raises(ImageReadError, match="bad.png"):
        read_image(path)


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "zero.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match="zero.png: empty file"):
        read_image(tmp_path / "zero.png")
    with pytest.raises(ImageReadError, match="nope.tif: file not found"):
        read_image(tmp_path / "nope.tif")


def test_failed_atomic_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_open(target) as handle:
            handle.write(b"partial")
            raise RuntimeError("crash while writing")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_stale_temporaries_are_swept(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / f"{TEMP_PREFIX}x.png.123").write_bytes(b"junk")
    (tmp_path / "keep.png").write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["keep.png"]


def test_srgb_transfer_round_trip_and_known_values():
    x = np.linspace(0, 1, 101, dtype=np.float32)
    np.testing.assert_allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-5)
    # Mid-grey sRGB 0.5 is 21.4 % linear light (IEC 61966-2-1).
    assert abs(float(srgb_to_linear(np.float32(0.5))) - 0.21404) < 1e-4


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("shape", [(), (7,), (0, 3), (5, 6), (4, 5, 3), (3, 2, 2, 4), (700, 1600, 3)])
def test_integer_codes_decode_to_the_formula_exactly_in_every_shape(dtype, shape):
    # (700, 1600, 3) spans several of the lookup's blocks of rows; a strided view has no
    # contiguous rows to hand to the table.
    codes = np.random.default_rng(0).integers(0, np.iinfo(dtype).max + 1, size=shape).astype(dtype)
    expected = srgb_to_linear(to_float(codes))  # the IEC formula on code / full scale
    decoded = srgb_to_linear(codes)
    assert decoded.dtype == np.float32 and decoded.shape == codes.shape
    np.testing.assert_array_equal(decoded, expected)
    if codes.ndim == 3:
        np.testing.assert_array_equal(srgb_to_linear(codes[:, ::2]), expected[:, ::2])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_encoding_is_within_one_code_of_the_formula_across_blocks(dtype):
    rng = np.random.default_rng(1)
    linear = rng.random((700, 1600, 3), dtype=np.float32) ** 3  # dense in the dark codes
    linear[0, :4, 0] = [-0.5, 0.0, 1.0, 2.0]  # out of range: clipped
    full = float(np.iinfo(dtype).max)
    formula = np.rint(linear_to_srgb(linear).astype(np.float64) * full)
    encoded = encode_srgb(linear, dtype)
    assert encoded.dtype == dtype and encoded.shape == linear.shape
    assert np.abs(encoded.astype(np.float64) - formula).max() <= 1
    assert encoded[0, :4, 0].tolist() == [0, 0, full, full]
    assert encode_srgb(np.float32(0.5), dtype).shape == ()
    # Rows are encoded independently: any block of them encodes as it does in the whole.
    np.testing.assert_array_equal(encode_srgb(linear[333:401], dtype), encoded[333:401])


def test_float_conversions():
    assert from_float(np.array([0.0, 0.5, 1.0, 1.5]), np.uint8).tolist() == [0, 128, 255, 255]
    assert to_float(np.array([65535], np.uint16))[0] == 1.0


def test_pixel_formats_are_parsed_once_with_their_bit_depth():
    from reloblur.errors import ImageFormatError
    from reloblur.imaging.pixel_formats import PixelFormat
    from reloblur.imaging.raw import frame_to_linear

    fmt = PixelFormat.parse("BayerRG12")
    assert (fmt.layout, fmt.pattern, fmt.bits, fmt.full_scale, fmt.dtype) == ("bayer", "RG", 12, 4095, np.uint16)
    assert PixelFormat.parse("BGRa8").stored_name == "RGB8" and PixelFormat.parse("Mono16").channels == 1
    # 12-bit data sits LSB-aligned in uint16: full white is 4095, and decodes to 1.0.
    white = np.full((8, 8), 4095, np.uint16)
    np.testing.assert_allclose(frame_to_linear(white, "Mono12"), 1.0)
    np.testing.assert_allclose(frame_to_linear(np.full((8, 8), 2048, np.uint16), "Mono12"), 2048 / 4095, atol=1e-6)
    for bad in ("Mono12p", "BayerRG12Packed", "YUV422_8", "Mono4"):
        with pytest.raises(ImageFormatError, match=bad):
            PixelFormat.parse(bad)


def test_a_jpeg_is_read_upright_as_its_exif_orientation_says(tmp_path):
    """A phone photo stores pixels as the sensor saw them and an EXIF orientation; viewers
    rotate it, and so must every command that reads it (deblur among them)."""
    import struct

    import cv2

    from reloblur.imaging.imageio import read_image

    image = np.zeros((40, 60, 3), np.uint8)
    image[:, :10] = (255, 0, 0)  # a red band on the left, as stored
    ok, jpeg = cv2.imencode(".jpg", np.ascontiguousarray(image[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    # EXIF with one tag, Orientation = 6: rotate 90 degrees clockwise to display.
    ifd = struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1, 6, 0) + struct.pack("<I", 0)
    exif = b"Exif\0\0" + b"II*\0" + struct.pack("<I", 8) + ifd
    app1 = b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif
    data = jpeg.tobytes()
    (tmp_path / "photo.jpg").write_bytes(data[:2] + app1 + data[2:])
    upright = read_image(tmp_path / "photo.jpg")
    assert upright.shape[:2] == (60, 40)  # rotated
    assert upright[:10, :, 0].mean() > 200 and upright[-10:, :, 0].mean() < 50  # the band is now on top


def test_a_png_says_how_its_values_relate_to_light_and_auto_follows_it(tmp_path):
    """Image editors write 16-bit sRGB PNGs and say so (sRGB, gAMA, iCCP chunks); OpenCV and
    camera software write none, and a 16-bit file is then linear."""
    import struct

    from reloblur.imaging.raw import load_linear

    codes = np.random.default_rng(4).integers(0, 65536, (6, 7, 3), dtype=np.uint16)
    write_image(tmp_path / "plain.png", codes)
    plain = (tmp_path / "plain.png").read_bytes()
    assert png_declared_transfer(plain) is None
    cases = {
        "srgb": png_with_chunk(plain, b"sRGB", b"\x00"),
        "gamma-srgb": png_with_chunk(plain, b"gAMA", struct.pack(">I", 45455)),
        "gamma-linear": png_with_chunk(plain, b"gAMA", struct.pack(">I", 100000)),
        "profile": png_with_chunk(plain, b"iCCP", b"sRGB IEC61966-2.1\x00\x00" + b"x"),
        # sRGB and iCCP override gAMA, wherever they stand
        "both": png_with_chunk(png_with_chunk(plain, b"sRGB", b"\x00"), b"gAMA", struct.pack(">I", 100000)),
    }
    expected = {"srgb": "srgb", "gamma-srgb": "srgb", "gamma-linear": "linear", "profile": "srgb", "both": "srgb"}
    for name, data in cases.items():
        assert png_declared_transfer(data) == expected[name], name
        (tmp_path / f"{name}.png").write_bytes(data)
        np.testing.assert_array_equal(read_image(tmp_path / f"{name}.png"), codes)  # pixels untouched
    np.testing.assert_allclose(load_linear(tmp_path / "plain.png"), codes / 65535, atol=1e-6)
    np.testing.assert_allclose(load_linear(tmp_path / "srgb.png"), srgb_to_linear(codes), atol=1e-6)
    np.testing.assert_allclose(load_linear(tmp_path / "gamma-linear.png"), codes / 65535, atol=1e-6)
    np.testing.assert_allclose(load_linear(tmp_path / "srgb.png", transfer="linear"), codes / 65535, atol=1e-6)


def test_a_cameras_colour_matrix_is_undone_where_its_output_did_not_clip():
    """Known answer: sensor values through a typical colour correction matrix, clipped at
    the output, in 16 bits, as an RGB16 frame. Undone, every pixel whose output did not
    clip is the sensor's to 1e-4; Bayer frames bypass the matrix; a singular matrix is
    refused."""
    from reloblur.errors import ImageFormatError
    from reloblur.imaging.raw import frame_to_linear, undo_colour_transformation

    matrix = CAMERA_MATRIX
    rng = np.random.default_rng(3)
    sensor = rng.uniform(0.0, 1.0, (64, 64, 3))
    output = np.clip(np.einsum("ij,hwj->hwi", matrix, sensor), 0, 1)
    frame = np.rint(output * 65535).astype(np.uint16)
    undone = frame_to_linear(frame, "RGB16", colour_matrix=matrix)
    kept = ((frame > 0) & (frame < 65535)).all(axis=2)
    assert 0.05 < kept.mean() < 0.95
    np.testing.assert_allclose(undone[kept], sensor[kept], atol=1e-4)
    assert np.abs(frame_to_linear(frame, "RGB16") - sensor)[kept].max() > 0.1  # not undone: far off

    bayer = frame[..., 1].copy()
    np.testing.assert_array_equal(frame_to_linear(bayer, "BayerRG16", colour_matrix=matrix),
                                  frame_to_linear(bayer, "BayerRG16"))
    with pytest.raises(ImageFormatError, match="singular"):
        undo_colour_transformation(output.astype(np.float32), np.array([[1, 0, 0], [1, 0, 0], [0, 0, 1.0]]))
    with pytest.raises(ImageFormatError, match="finite 3x3"):
        undo_colour_transformation(output.astype(np.float32), np.eye(2))
