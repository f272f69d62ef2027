// Just enough of the Arduino core to compile firmware/syncbox/syncbox.ino on a host, so its
// request handler can be fed the same lines as the emulator (tests/sim/test_firmware_parity.py).
// Serial reads standard input and writes standard output; the timer registers are plain
// variables and the interrupt service routines never run (no pulses are fired on the host:
// a FIRE leaves the box busy until STOP, which is what the protocol tests need).
#pragma once
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define HIGH 1
#define LOW 0
#define OUTPUT 1
#define _BV(bit) (1u << (bit))
#define ISR(vector) void vector()
#define TOV1 0
#define OCF1A 1
#define OCIE1A 1
#define TOIE1 0
#define CS11 1

extern volatile uint16_t TCNT1, OCR1A;
extern volatile uint8_t TIFR1, TIMSK1, TCCR1A, TCCR1B;

inline void pinMode(uint8_t, uint8_t) {}
inline void digitalWrite(uint8_t, uint8_t) {}
inline void noInterrupts() {}
inline void interrupts() {}

class HostSerial {
 public:
  void begin(unsigned long) {}
  int available();
  int read();
  // As the Arduino core's Print: a char is a character, every other integer a decimal number.
  void print(const char *text) { fputs(text, stdout); }
  void print(char c) { fputc(c, stdout); }
  void print(unsigned char v) { printf("%u", (unsigned)v); }
  void print(int v) { printf("%d", v); }
  void print(unsigned int v) { printf("%u", v); }
  void print(long v) { printf("%ld", v); }
  void print(unsigned long v) { printf("%lu", v); }
};
extern HostSerial Serial;
