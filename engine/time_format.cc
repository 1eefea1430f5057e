#include "engine/time_format.h"

#include <charconv>
#include <cstdio>
#include <cstring>
#include <limits>

namespace ledger {

namespace {

constexpr int64_t kUsPerSecond = 1000000;
constexpr int64_t kSecondsPerDay = 86400;

// Howard Hinnant's days_from_civil / civil_from_days (public domain).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

struct Civil {
  int64_t y;
  unsigned m, d;
};

Civil CivilFromDays(int64_t z) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp + (mp < 10 ? 3 : -9);
  return {y + (m <= 2), m, d};
}

// Division rounding down, and its remainder (in [0, b) for b > 0). The
// remainder is not a - FloorDiv(a, b) * b, which overflows for the earliest
// times an int64 holds.
int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }
int64_t FloorMod(int64_t a, int64_t b) { return a % b < 0 ? a % b + b : a % b; }

// The calendar date of a time.
Civil CivilAt(TimeUs t) {
  return CivilFromDays(FloorDiv(FloorDiv(t, kUsPerSecond), kSecondsPerDay));
}

bool Digits(std::string_view s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = 0; i < n; ++i) {
    char c = s[pos + i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = v;
  return true;
}

}  // namespace

size_t FormatTimeTo(TimeUs t, char* buf) {
  int64_t secs = FloorDiv(t, kUsPerSecond);
  int64_t us = FloorMod(t, kUsPerSecond);
  // The text up to the fraction changes once a second: answers of one group
  // share it, so it is kept per thread for the last second seen (every
  // answer carries a time; the calendar arithmetic was a visible share of a
  // batch response's cost).
  struct Second {
    int64_t secs = std::numeric_limits<int64_t>::min();
    size_t len = 0;
    char text[kTimeTextBytesMax];
  };
  thread_local Second last;
  if (secs != last.secs) {
    int64_t sod = FloorMod(secs, kSecondsPerDay);
    Civil c = CivilFromDays(FloorDiv(secs, kSecondsPerDay));
    // The year as printf's "%04lld" writes it: at least four characters,
    // the sign counted ("-001", "2026", "10000").
    bool negative = c.y < 0;
    char year[24];
    size_t digits = static_cast<size_t>(
        std::to_chars(year, year + sizeof year, negative ? -c.y : c.y).ptr - year);
    size_t width = negative ? 3 : 4;
    size_t n = 0;
    if (negative) last.text[n++] = '-';
    for (size_t i = digits; i < width; ++i) last.text[n++] = '0';
    std::memcpy(last.text + n, year, digits);
    n += digits;
    // The rest has a fixed width, written by hand.
    char rest[] = "-00-00T00:00:00.";
    auto put = [&rest](size_t last_digit, int64_t v) {
      for (int i = 0; i < 2; ++i, v /= 10) rest[last_digit - i] = static_cast<char>('0' + v % 10);
    };
    put(2, c.m);
    put(5, c.d);
    put(8, sod / 3600);
    put(11, sod / 60 % 60);
    put(14, sod % 60);
    std::memcpy(last.text + n, rest, sizeof rest - 1);
    last.len = n + sizeof rest - 1;
    last.secs = secs;
  }
  std::memcpy(buf, last.text, last.len);
  char* p = buf + last.len;
  for (int i = 5; i >= 0; --i, us /= 10) p[i] = static_cast<char>('0' + us % 10);
  p[6] = 'Z';
  return last.len + 7;
}

void AppendTime(TimeUs t, std::string* out) {
  char buf[kTimeTextBytesMax];
  out->append(buf, FormatTimeTo(t, buf));
}

std::string FormatTime(TimeUs t) {
  std::string s;
  AppendTime(t, &s);
  return s;
}

std::optional<TimeUs> ParseTime(std::string_view s) {
  int y, mo, d, h, mi, sec;
  if (!Digits(s, 0, 4, &y) || s.size() < 19 || s[4] != '-' || !Digits(s, 5, 2, &mo) ||
      s[7] != '-' || !Digits(s, 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
      !Digits(s, 11, 2, &h) || s[13] != ':' || !Digits(s, 14, 2, &mi) || s[16] != ':' ||
      !Digits(s, 17, 2, &sec)) {
    return std::nullopt;
  }
  static constexpr int kDaysInMonth[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (mo < 1 || mo > 12 || d < 1 || d > kDaysInMonth[mo - 1] || h > 23 || mi > 59 || sec > 60) {
    return std::nullopt;
  }
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (mo == 2 && d == 29 && !leap) return std::nullopt;
  if (sec == 60) sec = 59;  // leap second: hold at :59
  size_t pos = 19;
  int64_t us = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    size_t digits = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (digits < 6) us = us * 10 + (s[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0) return std::nullopt;
    for (size_t i = digits; i < 6; ++i) us *= 10;
  }
  int64_t offset_s = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int oh, om;
    if (!Digits(s, pos + 1, 2, &oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !Digits(s, pos + 4, 2, &om) || oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset_s = (oh * 3600 + om * 60) * (s[pos] == '+' ? 1 : -1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  int64_t days = DaysFromCivil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  int64_t secs = days * kSecondsPerDay + h * 3600 + mi * 60 + sec - offset_s;
  return secs * kUsPerSecond + us;
}

int64_t MonthIndex(TimeUs t) {
  Civil c = CivilAt(t);
  return c.y * 12 + (c.m - 1);
}

std::string MonthLabel(TimeUs t) {
  Civil c = CivilAt(t);
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04lld-%02u", static_cast<long long>(c.y), c.m);
  return buf;
}

}  // namespace ledger
