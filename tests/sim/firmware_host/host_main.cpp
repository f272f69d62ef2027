// Host entry point for the sync-box sketch: setup(), then loop() until standard input is
// exhausted (every request line has been read and answered).
#include "Arduino.h"

volatile uint16_t TCNT1 = 0, OCR1A = 0;
volatile uint8_t TIFR1 = 0, TIMSK1 = 0, TCCR1A = 0, TCCR1B = 0;
HostSerial Serial;

static int pending = EOF;
static bool ended = false;

int HostSerial::available() {
  if (pending == EOF && !ended) {
    pending = fgetc(stdin);
    ended = pending == EOF;
  }
  return pending != EOF;
}

int HostSerial::read() {
  available();
  int c = pending;
  pending = EOF;
  return c;
}

void setup();
void loop();

int main() {
  setup();
  while (Serial.available()) loop();
  fflush(stdout);
  return 0;
}
