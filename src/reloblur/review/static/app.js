// reloblur mask review: paint, erase, polygon-fill, take objects from S and re-threshold one
// pair's blur mask.
"use strict";
(() => {
  // The server traded the URL's token for an HttpOnly cookie, which every same-origin
  // request carries; a token still in the URL (an old link) is sent as a header.
  const token = new URLSearchParams(location.search).get("token") || "";
  const $ = (id) => document.getElementById(id);
  const canvas = $("view");
  const ctx = canvas.getContext("2d");
  const app = {
    ready: false, pairs: [], index: 0, meta: null, images: {}, base: "blur", showMask: true,
    tool: "brush", size: 24, scale: 1, ox: 0, oy: 0, undo: [], redo: [], dirty: false,
    polygon: [], box: null, savedVersion: 0, mask: document.createElement("canvas"),
  };
  window.reviewApp = app;
  const mctx = app.mask.getContext("2d", { willReadFrequently: true });

  async function api(path, body) {
    const options = { headers: token ? { "X-Token": token } : {} };
    if (body !== undefined) {
      options.method = "POST";
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch(path, options);
    const data = await response.json();
    if (!response.ok) {
      const error = new Error(data.error || response.statusText);
      error.status = response.status;
      throw error;
    }
    return data;
  }

  function loadImage(kind, id) {
    return new Promise((resolve, reject) => {
      const image = new Image();
      image.onload = () => resolve(image);
      image.onerror = () => reject(new Error(`cannot load ${kind} of ${id}`));
      image.src = `api/image?id=${encodeURIComponent(id)}&kind=${kind}&t=${Date.now()}`;
    });
  }

  function say(text) { $("message").textContent = text; }

  function setMaskFromImage(image, add = false) {
    // Stored masks are white-on-black; the editing canvas keeps white-on-transparent. With
    // add, the image's white is added to what the mask holds (the object tool's answer).
    const w = app.mask.width, h = app.mask.height;
    const source = document.createElement("canvas");
    source.width = w;
    source.height = h;
    const sctx = source.getContext("2d", { willReadFrequently: true });
    sctx.drawImage(image, 0, 0);
    const found = sctx.getImageData(0, 0, w, h).data;
    const data = add ? mctx.getImageData(0, 0, w, h) : mctx.createImageData(w, h);
    for (let i = 0; i < found.length; i += 4) {
      const on = found[i] > 127;
      if (!on && add) continue;
      data.data[i] = data.data[i + 1] = data.data[i + 2] = 255;
      data.data[i + 3] = on ? 255 : 0;
    }
    mctx.putImageData(data, 0, 0);
  }

  function snapshot() {
    app.undo.push(mctx.getImageData(0, 0, app.mask.width, app.mask.height));
    if (app.undo.length > 50) app.undo.shift();
    app.redo = [];
    app.dirty = true;
  }

  function fit() {
    const w = app.mask.width, h = app.mask.height;
    canvas.width = canvas.clientWidth;
    canvas.height = canvas.clientHeight;
    app.scale = Math.min(canvas.width / w, canvas.height / h);
    app.ox = (canvas.width - w * app.scale) / 2;
    app.oy = (canvas.height - h * app.scale) / 2;
    render();
  }

  const tint = document.createElement("canvas");
  function render() {
    const base = app.images[app.base];
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (!base) return;
    ctx.imageSmoothingEnabled = app.scale < 1;
    ctx.setTransform(app.scale, 0, 0, app.scale, app.ox, app.oy);
    ctx.drawImage(base, 0, 0);
    if (app.showMask) {
      tint.width = app.mask.width;
      tint.height = app.mask.height;
      const t = tint.getContext("2d");
      t.drawImage(app.mask, 0, 0);
      t.globalCompositeOperation = "source-in";
      t.fillStyle = "rgba(255, 40, 40, 0.45)";
      t.fillRect(0, 0, tint.width, tint.height);
      ctx.drawImage(tint, 0, 0);
    }
    if (app.polygon.length) {
      ctx.strokeStyle = "#0f0";
      ctx.lineWidth = 1 / app.scale;
      ctx.beginPath();
      app.polygon.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      ctx.stroke();
    }
    if (app.box) {
      const [x0, y0] = app.box.from, [x1, y1] = app.box.to;
      ctx.strokeStyle = "#0ff";
      ctx.lineWidth = 1 / app.scale;
      ctx.setLineDash([4 / app.scale, 4 / app.scale]);
      ctx.strokeRect(Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0));
      ctx.setLineDash([]);
    }
  }

  function toImage(event) {
    const rect = canvas.getBoundingClientRect();
    return [(event.clientX - rect.left - app.ox) / app.scale, (event.clientY - rect.top - app.oy) / app.scale];
  }
  app.imageToClient = (x, y) => {
    const rect = canvas.getBoundingClientRect();
    return [rect.left + app.ox + x * app.scale, rect.top + app.oy + y * app.scale];
  };

  function stroke(from, to) {
    mctx.save();
    mctx.globalCompositeOperation = app.tool === "eraser" ? "destination-out" : "source-over";
    mctx.strokeStyle = mctx.fillStyle = "#fff";
    mctx.lineWidth = app.size;
    mctx.lineCap = mctx.lineJoin = "round";
    mctx.beginPath();
    mctx.moveTo(from[0], from[1]);
    mctx.lineTo(to[0], to[1]);
    mctx.stroke();
    mctx.restore();
  }

  function closePolygon() {
    if (app.polygon.length >= 3) {
      snapshot();
      mctx.save();
      mctx.fillStyle = "#fff";
      mctx.beginPath();
      app.polygon.forEach(([x, y], i) => (i ? mctx.lineTo(x, y) : mctx.moveTo(x, y)));
      mctx.closePath();
      mctx.fill();
      mctx.restore();
    }
    app.polygon = [];
    render();
  }

  async function takeObject(from, to) {
    // The object S shows inside the box (server side: GrabCut on S), added to the mask.
    const item = app.pairs[app.index];
    const box = [Math.min(from[1], to[1]), Math.min(from[0], to[0]), Math.max(from[1], to[1]), Math.max(from[0], to[0])];
    say("finding the object in the box…");
    try {
      const result = await api("api/object", { id: item.id, box: box.map(Math.round) });
      const image = new Image();
      image.onload = () => {
        // Another pair opened while the server worked: this object is not its.
        if (app.pairs[app.index].id !== item.id) return;
        snapshot();
        setMaskFromImage(image, true);
        app.box = null;
        render();
        say(`added the object in the box: ${result.pixels} px (not saved)`);
      };
      image.src = result.png;
    } catch (error) {
      app.box = null;
      render();
      say(`object: ${error.message}`);
    }
  }

  let drag = null;
  canvas.addEventListener("contextmenu", (e) => e.preventDefault());
  canvas.addEventListener("pointerdown", (event) => {
    canvas.focus();
    canvas.setPointerCapture(event.pointerId);
    const panning = event.button !== 0 || app.tool === "pan" || space;
    if (panning) {
      drag = { pan: true, x: event.clientX, y: event.clientY };
    } else if (app.tool === "polygon") {
      app.polygon.push(toImage(event));
      render();
    } else if (app.tool === "object") {
      const p = toImage(event);
      app.box = { from: p, to: p };
      drag = { box: true };
    } else {
      snapshot();
      const p = toImage(event);
      stroke(p, p);
      drag = { pan: false, last: p };
      render();
    }
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!drag) return;
    if (drag.pan) {
      app.ox += event.clientX - drag.x;
      app.oy += event.clientY - drag.y;
      drag.x = event.clientX;
      drag.y = event.clientY;
    } else if (drag.box) {
      app.box.to = toImage(event);
    } else {
      const p = toImage(event);
      stroke(drag.last, p);
      drag.last = p;
    }
    render();
  });
  canvas.addEventListener("pointerup", () => {
    if (drag && drag.box) takeObject(app.box.from, app.box.to);
    drag = null;
  });
  canvas.addEventListener("dblclick", () => { if (app.tool === "polygon") closePolygon(); });
  canvas.addEventListener("wheel", (event) => {
    event.preventDefault();
    const [x, y] = toImage(event);
    const factor = Math.exp(-event.deltaY * 0.0015);
    app.scale = Math.min(40, Math.max(0.05, app.scale * factor));
    const rect = canvas.getBoundingClientRect();
    app.ox = event.clientX - rect.left - x * app.scale;
    app.oy = event.clientY - rect.top - y * app.scale;
    render();
  }, { passive: false });

  function setTool(tool) {
    app.tool = tool;
    app.polygon = [];
    app.box = null;
    document.querySelectorAll("[data-tool]").forEach((b) => b.classList.toggle("active", b.dataset.tool === tool));
    render();
  }
  function setSize(size) {
    app.size = Math.max(1, Math.min(200, size));
    $("size").value = app.size;
    $("size-value").textContent = app.size;
  }

  function restore(from, to) {
    if (!from.length) return;
    to.push(mctx.getImageData(0, 0, app.mask.width, app.mask.height));
    mctx.putImageData(from.pop(), 0, 0);
    app.dirty = true;
    render();
  }

  function maskPng() {
    // Export opaque white-on-black so the PNG reads as a mask anywhere.
    const out = document.createElement("canvas");
    out.width = app.mask.width;
    out.height = app.mask.height;
    const o = out.getContext("2d");
    o.fillStyle = "#000";
    o.fillRect(0, 0, out.width, out.height);
    o.drawImage(app.mask, 0, 0);
    return out.toDataURL("image/png");
  }

  function updateStatus() {
    const item = app.pairs[app.index];
    $("pair-name").textContent = `${item.id} (${app.index + 1}/${app.pairs.length})`;
    $("status-badge").textContent = `${app.meta.review} · ${app.meta.source} · v${app.meta.version}`;
    const reviewed = app.pairs.filter((p) => p.review !== "auto").length;
    $("progress").textContent = `${reviewed} / ${app.pairs.length} reviewed`;
    // What the generator asks a curator to check (a withheld mask, misalignment, clipping).
    const flags = (app.meta.diagnostics && app.meta.diagnostics.flags) || [];
    $("checks").textContent = flags.map((f) => `check: ${f}`).join("\n");
    $("checks").hidden = flags.length === 0;
    const list = $("list");
    list.innerHTML = "";
    app.pairs.forEach((p, i) => {
      const row = document.createElement("div");
      row.textContent = p.id;
      row.className = `${p.review}${p.flagged ? " flagged" : ""}${i === app.index ? " current" : ""}`;
      if (p.flagged) row.title = "the generator flagged this pair: open it to see why";
      row.onclick = () => open(i);
      list.appendChild(row);
    });
  }

  async function save(review) {
    const item = app.pairs[app.index];
    try {
      const result = await api("api/save", { id: item.id, version: app.meta.version, png: maskPng(), review });
      app.meta.version = result.version;
      app.meta.review = item.review = result.review;
      app.meta.source = "edited";
      item.version = result.version;
      app.savedVersion = result.version;
      app.dirty = false;
      say(`saved ${item.id} (v${result.version}, ${(100 * result.blur_ratio).toFixed(2)} % blurred)`);
      updateStatus();
      return true;
    } catch (error) {
      say(error.status === 409 ? `conflict: ${error.message}` : `save failed: ${error.message}`);
      return false;
    }
  }

  async function setReview(review) {
    const item = app.pairs[app.index];
    if (app.dirty) return save(review);
    try {
      const result = await api("api/review", { id: item.id, version: app.meta.version, review });
      app.meta.version = item.version = app.savedVersion = result.version;
      app.meta.review = item.review = review;
      updateStatus();
      return true;
    } catch (error) {
      say(error.status === 409 ? `conflict: ${error.message}` : `failed: ${error.message}`);
      return false;
    }
  }

  async function regenerate() {
    const high = parseFloat($("threshold").value);
    const item = app.pairs[app.index];
    try {
      const result = await api("api/regenerate", { id: item.id, high_sigmas: high, low_sigmas: high / 2 });
      const image = new Image();
      image.onload = () => { snapshot(); setMaskFromImage(image); render(); say(`re-thresholded at ${high} σ (not saved)`); };
      image.src = result.png;
    } catch (error) {
      say(`threshold failed: ${error.message}`);
    }
  }

  async function open(index) {
    if (app.dirty && !confirm("Discard unsaved changes to this mask?")) return;
    app.ready = false;
    app.index = (index + app.pairs.length) % app.pairs.length;
    const item = app.pairs[app.index];
    say(`loading ${item.id}…`);
    const [meta, blur, sharp, diff, confidence, mask] = await Promise.all([
      api(`api/meta?id=${encodeURIComponent(item.id)}`),
      loadImage("blur", item.id), loadImage("sharp", item.id), loadImage("diff", item.id),
      loadImage("confidence", item.id), loadImage("mask", item.id),
    ]);
    app.meta = meta;
    app.images = { blur, sharp, diff, confidence };
    app.mask.width = blur.naturalWidth;
    app.mask.height = blur.naturalHeight;
    setMaskFromImage(mask);
    app.undo = [];
    app.redo = [];
    app.dirty = false;
    app.savedVersion = meta.version;
    if (meta.params && meta.params.high_sigmas) {
      $("threshold").value = meta.params.high_sigmas;
      $("threshold-value").textContent = meta.params.high_sigmas;
    }
    updateStatus();
    fit();
    say("");
    app.ready = true;
  }

  let space = false;
  document.addEventListener("keyup", (e) => { if (e.key === " ") space = false; });
  document.addEventListener("keydown", async (event) => {
    if (event.target.tagName === "INPUT" || event.target.tagName === "SELECT") return;
    const key = event.key.toLowerCase();
    if (event.ctrlKey || event.metaKey) {
      if (key === "z" && !event.shiftKey) restore(app.undo, app.redo);
      else if (key === "y" || (key === "z" && event.shiftKey)) restore(app.redo, app.undo);
      else return;
      event.preventDefault();
      return;
    }
    const actions = {
      " ": () => { space = true; },
      n: () => open(app.index + 1), arrowright: () => open(app.index + 1),
      p: () => open(app.index - 1), arrowleft: () => open(app.index - 1),
      a: async () => { if (await setReview("reviewed")) open(app.index + 1); },
      r: async () => { if (await setReview("rejected")) open(app.index + 1); },
      s: () => save(),
      b: () => setTool("brush"), e: () => setTool("eraser"), g: () => setTool("polygon"), h: () => setTool("pan"),
      o: () => setTool("object"),
      "[": () => setSize(app.size - 4), "]": () => setSize(app.size + 4),
      1: () => { app.base = "blur"; $("base").value = "blur"; render(); },
      2: () => { app.base = "sharp"; $("base").value = "sharp"; render(); },
      3: () => { app.base = "diff"; $("base").value = "diff"; render(); },
      4: () => { app.base = "confidence"; $("base").value = "confidence"; render(); },
      m: () => { app.showMask = !app.showMask; $("show-mask").checked = app.showMask; render(); },
      0: fit,
      enter: closePolygon,
      escape: () => { app.polygon = []; app.box = null; render(); },
    };
    if (actions[key]) {
      event.preventDefault();
      await actions[key]();
    }
  });

  document.querySelectorAll("[data-tool]").forEach((b) => b.addEventListener("click", () => setTool(b.dataset.tool)));
  $("size").addEventListener("input", (e) => setSize(parseInt(e.target.value, 10)));
  $("threshold").addEventListener("input", (e) => { $("threshold-value").textContent = e.target.value; });
  $("threshold").addEventListener("change", regenerate);
  $("base").addEventListener("change", (e) => { app.base = e.target.value; render(); });
  $("show-mask").addEventListener("change", (e) => { app.showMask = e.target.checked; render(); });
  $("undo").onclick = () => restore(app.undo, app.redo);
  $("redo").onclick = () => restore(app.redo, app.undo);
  $("fit").onclick = fit;
  $("save").onclick = () => save();
  $("accept").onclick = async () => { if (await setReview("reviewed")) open(app.index + 1); };
  $("reject").onclick = async () => { if (await setReview("rejected")) open(app.index + 1); };
  $("prev").onclick = () => open(app.index - 1);
  $("next").onclick = () => open(app.index + 1);
  window.addEventListener("resize", fit);
  window.addEventListener("beforeunload", (e) => { if (app.dirty) { e.preventDefault(); e.returnValue = ""; } });

  api("api/pairs").then((summary) => {
    app.pairs = summary.pairs;
    setTool("brush");
    return open(0);
  }).catch((error) => say(`cannot load: ${error.message}`));
})();
