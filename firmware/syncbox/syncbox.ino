// reloblur sync box firmware (reference sketch, Arduino Uno / Nano, ATmega328P at 16 MHz).
//
// Implements docs/sync-box.md (protocol version 1). Pulses are timed by Timer1 compare
// interrupts (0.5 us resolution with prescaler 8), not by the main loop, so serial traffic
// cannot jitter them:
//   compare A: B rising edge; compare B: S rising edge (B + DLY);
//   the falling edges are scheduled from the ISRs (B + EXP_B, S + EXP_S).
// Wiring: pin 9 -> B trigger (opto-isolated input Line0), pin 10 -> S trigger,
// pin 7 / pin 8 -> relays or MOSFETs switching B / S 12 V power.

#include <Arduino.h>

const char FIRMWARE[] = "fw-1.0";
const char SERIAL_NO[] = "SB-0001";
const uint8_t PIN_B = 9, PIN_S = 10, PIN_PWR_B = 7, PIN_PWR_S = 8;
const uint8_t MAX_LINE = 64;

volatile uint32_t sequence = 0;
volatile uint32_t remaining = 0;      // pairs still to fire; 0xFFFFFFFF = free run
volatile bool pairDone = false;
volatile uint32_t doneSeq = 0, doneTime = 0;
uint32_t expB = 40000, expS = 2000, delayUs = 19000, periodUs = 200000;
bool powerB = false, powerS = false, armed = false;
char line[MAX_LINE];
uint8_t lineLength = 0;
bool overflow = false;

// Timer1 runs free at 2 MHz (prescaler 8): 1 tick = 0.5 us; 32.768 ms per wrap. Longer
// intervals are counted in wraps by the overflow interrupt.
volatile uint32_t wraps = 0;
volatile uint32_t nextPairAt = 0;     // in ticks since start (extended with wraps)
volatile uint8_t phase = 0;           // 0 idle, 1 waiting B rise, 2 B high, 3 S high

static inline uint32_t nowTicks() {
  noInterrupts();
  uint16_t t = TCNT1;
  uint32_t w = wraps;
  if ((TIFR1 & _BV(TOV1)) && t < 0x8000) w++;
  interrupts();
  return (w << 16) | t;
}

// A small event scheduler on compare A: the ISR performs the due edge and schedules the next.
volatile uint32_t dueAt = 0;
volatile uint32_t bFallAt = 0, sRiseAt = 0, sFallAt = 0;

void scheduleCompare(uint32_t at) {
  dueAt = at;
  OCR1A = (uint16_t)at;
  TIFR1 = _BV(OCF1A);
  TIMSK1 |= _BV(OCIE1A);
}

ISR(TIMER1_OVF_vect) { wraps++; }

ISR(TIMER1_COMPA_vect) {
  uint32_t now = (wraps << 16) | TCNT1;
  if ((int32_t)(now - dueAt) < -4) return;  // same low word, earlier wrap: not yet
  switch (phase) {
    case 1:  // B rises; S rises DLY later; B falls EXP_B later
      digitalWrite(PIN_B, HIGH);
      bFallAt = dueAt + expB * 2;
      sRiseAt = dueAt + delayUs * 2;
      sFallAt = sRiseAt + expS * 2;
      phase = 2;
      scheduleCompare(sRiseAt < bFallAt ? sRiseAt : bFallAt);
      break;
    case 2: {
      uint32_t t = dueAt;
      if (t == sRiseAt) digitalWrite(PIN_S, HIGH);
      if (t == bFallAt) digitalWrite(PIN_B, LOW);
      if (t == sFallAt) digitalWrite(PIN_S, LOW);
      uint32_t next = 0xFFFFFFFF;
      if ((int32_t)(sRiseAt - t) > 0 && sRiseAt < next) next = sRiseAt;
      if ((int32_t)(bFallAt - t) > 0 && bFallAt < next) next = bFallAt;
      if ((int32_t)(sFallAt - t) > 0 && sFallAt < next) next = sFallAt;
      if (next != 0xFFFFFFFF) { scheduleCompare(next); break; }
      // Pair complete: report it and schedule the next one.
      doneSeq = sequence++;
      doneTime = nextPairAt / 2;
      pairDone = true;
      if (remaining != 0xFFFFFFFF) remaining--;
      if (remaining > 0) {
        nextPairAt += periodUs * 2;
        phase = 1;
        scheduleCompare(nextPairAt);
      } else {
        phase = 0;
        TIMSK1 &= ~_BV(OCIE1A);
      }
      break;
    }
    default:
      TIMSK1 &= ~_BV(OCIE1A);
  }
}

void reply(const char *text) { Serial.print(text); Serial.print('\n'); }
void replyError(uint8_t code) {
  static const char *const messages[] = {"", "unknown command", "bad argument", "not armed", "busy",
                                         "line too long", "camera not powered"};
  Serial.print("ERR "); Serial.print(code); Serial.print(' '); Serial.print(messages[code]); Serial.print('\n');
}

bool parseUnsigned(const char *text, uint32_t lo, uint32_t hi, uint32_t *out) {
  if (!*text) return false;
  uint32_t value = 0;
  for (const char *p = text; *p; p++) {
    if (*p < '0' || *p > '9' || value > 429496729UL) return false;
    value = value * 10 + (*p - '0');
  }
  if (value < lo || value > hi) return false;
  *out = value;
  return true;
}

void startFiring(uint32_t count) {
  noInterrupts();
  remaining = count;
  nextPairAt = ((wraps << 16) | TCNT1) + 200;  // 100 us from now
  phase = 1;
  interrupts();
  scheduleCompare(nextPairAt);
}

void handle(char *request) {
  char *cmd = strtok(request, " ");
  char *a = strtok(NULL, " ");
  char *b = strtok(NULL, " ");
  char *extra = strtok(NULL, " ");
  bool busy = phase != 0;
  uint32_t value;
  if (!cmd) return replyError(1);
  if (extra) return replyError(2);
  if (!strcmp(cmd, "ID?") && !a) {
    Serial.print("OK RELOBLUR-SYNCBOX "); Serial.print(FIRMWARE); Serial.print(' '); Serial.print(SERIAL_NO); Serial.print('\n');
  } else if (!strcmp(cmd, "VER?") && !a) {
    reply("OK 1");
  } else if (!strcmp(cmd, "PWR") && a && b && (!strcmp(a, "B") || !strcmp(a, "S"))) {
    bool on = !strcmp(b, "ON");
    if (!on && strcmp(b, "OFF")) return replyError(2);
    if (*a == 'B') { powerB = on; digitalWrite(PIN_PWR_B, on); } else { powerS = on; digitalWrite(PIN_PWR_S, on); }
    reply("OK");
  } else if (!strcmp(cmd, "EXP") && a && b && (!strcmp(a, "B") || !strcmp(a, "S"))) {
    if (busy) return replyError(4);
    if (!parseUnsigned(b, 1, 10000000UL, &value)) return replyError(2);
    if (*a == 'B') expB = value; else expS = value;
    Serial.print("OK "); Serial.print(value); Serial.print('\n');
  } else if (!strcmp(cmd, "DLY") && a && !b) {
    if (busy) return replyError(4);
    if (!parseUnsigned(a, 0, 10000000UL, &value)) return replyError(2);
    delayUs = value;
    Serial.print("OK "); Serial.print(value); Serial.print('\n');
  } else if (!strcmp(cmd, "PER") && a && !b) {
    if (busy) return replyError(4);
    if (!parseUnsigned(a, 1000, 60000000UL, &value)) return replyError(2);
    periodUs = value;
    Serial.print("OK "); Serial.print(value); Serial.print('\n');
  } else if (!strcmp(cmd, "ARM") && !a) {
    if (!powerB || !powerS) return replyError(6);
    armed = true;
    reply("OK");
  } else if (!strcmp(cmd, "FIRE") && a && !b) {
    if (busy) return replyError(4);
    if (!armed) return replyError(3);
    if (!parseUnsigned(a, 1, 1000000UL, &value)) return replyError(2);
    Serial.print("OK "); Serial.print(sequence); Serial.print('\n');
    startFiring(value);
  } else if (!strcmp(cmd, "RUN") && !a) {
    if (busy) return replyError(4);
    if (!armed) return replyError(3);
    reply("OK");
    startFiring(0xFFFFFFFF);
  } else if (!strcmp(cmd, "STOP") && !a) {
    noInterrupts();
    remaining = 0; phase = 0; TIMSK1 &= ~_BV(OCIE1A);
    interrupts();
    digitalWrite(PIN_B, LOW); digitalWrite(PIN_S, LOW);
    armed = false;
    reply("OK");
  } else if (!strcmp(cmd, "STAT?") && !a) {
    Serial.print("OK state="); Serial.print(busy ? "FIRING" : armed ? "ARMED" : "IDLE");
    Serial.print(" seq="); Serial.print(sequence);
    Serial.print(" pwr="); Serial.print(powerB ? '1' : '0'); Serial.print(powerS ? '1' : '0');
    Serial.print(" expb="); Serial.print(expB); Serial.print(" exps="); Serial.print(expS);
    Serial.print(" dly="); Serial.print(delayUs); Serial.print(" per="); Serial.print(periodUs); Serial.print('\n');
  } else {
    replyError(1);
  }
}

void setup() {
  pinMode(PIN_B, OUTPUT); pinMode(PIN_S, OUTPUT); pinMode(PIN_PWR_B, OUTPUT); pinMode(PIN_PWR_S, OUTPUT);
  digitalWrite(PIN_B, LOW); digitalWrite(PIN_S, LOW);
  Serial.begin(115200);
  noInterrupts();
  TCCR1A = 0; TCCR1B = _BV(CS11); TCNT1 = 0;  // normal mode, prescaler 8
  TIMSK1 = _BV(TOIE1);
  interrupts();
}

void loop() {
  if (pairDone) {
    noInterrupts();
    uint32_t seq = doneSeq, t = doneTime;
    pairDone = false;
    interrupts();
    Serial.print("!TRG "); Serial.print(seq); Serial.print(' '); Serial.print(t); Serial.print('\n');
  }
  while (Serial.available()) {
    char c = Serial.read();
    if (c == '\r') continue;
    if (c == '\n') {
      if (overflow) replyError(5);
      else { line[lineLength] = 0; handle(line); }
      lineLength = 0; overflow = false;
    } else if (lineLength < MAX_LINE - 1) {
      line[lineLength++] = c;
    } else {
      overflow = true;
    }
  }
}
