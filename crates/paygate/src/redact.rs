//! Last line of defence against secrets in the logs.
//!
//! Every formatted log line passes through [`redact`] (via
//! [`RedactingMakeWriter`]) before it is written, so that a card number, API
//! key, webhook secret, password or authorization header value that some code
//! logs by mistake never reaches the log sink. The scanner is hand written
//! (no regex dependency) and runs in linear time; a clean line is scanned
//! once and returned borrowed, without allocating.
//!
//! What is replaced:
//!
//! * Card numbers (PANs): 13 to 19 digits, optionally grouped by single
//!   spaces or hyphens, that pass the Luhn check and are not glued to letters
//!   (`pay_01J4330000000000003X` is an identifier, not a PAN) nor part of a
//!   run of 20 or more contiguous digits. They become `[PAN ****1234]`.
//!   Any Luhn-valid 13 to 19 digit number is treated as a PAN, so a
//!   millisecond timestamp or an amount that happens to pass Luhn is masked
//!   too; we accept that noise because a leaked PAN is far worse. Digits
//!   right after `<digit>.` are the fraction of a decimal number and are left
//!   alone. A PAN logged as a bare JSON number becomes a JSON string so that
//!   the line stays valid JSON.
//! * API keys `test_sk_`, `live_sk_`, `test_ck_`, `live_ck_` and webhook
//!   secrets `whsec_`: the prefix is kept so the kind of key stays visible.
//! * `Basic`/`Bearer` credentials. A few prose words (`Bearer token`,
//!   `Basic auth`) are recognised and left alone so that error messages about
//!   missing credentials stay readable.
//! * Values of secret-bearing keys (see `SECRET_KEYS`) written as JSON
//!   (`"key":"v"`, `"key": 1`, `{...}` values), escaped JSON inside a JSON
//!   string (`\"key\":\"v\"`, any depth), `key=value` and `key: value`.
//!   A key name is compared case-insensitively with `_` and `-` removed, and
//!   is also recognised as the last `_`/`-` separated part of a longer name
//!   (`db_password`, `x-api-key`). JSON `null`, `true`, `false` and empty
//!   strings are kept since they hide nothing. A redacted value is scanned
//!   again for keys hidden inside it (`cvc=x-api-key: k`), because their own
//!   values may lie beyond it.
//!
//! The scanner understands ANSI colour sequences (tracing's text formatter
//! wraps field names in them) and the short JSON escapes `\n`, `\t`, `\r`,
//! `\b`, `\f`, treating them as separators. A PAN glued to a `\uXXXX` escape
//! is not recognised; serde only emits those for rare control characters.
//! False positives are accepted wherever the choice is between them and a
//! possible leak, for example a prose `password: expected 8 characters`
//! loses its next word.

use std::borrow::Cow;
use std::io;

use tracing_subscriber::fmt::MakeWriter;

/// Replacement text for every secret value.
const REDACTED: &[u8] = b"[REDACTED]";

/// Key names (lowercase, without `_` and `-`) whose values are always secret.
const SECRET_KEYS: &[&[u8]] = &[
    b"password",
    b"cardpassword",
    b"passwd",
    b"secret",
    b"secretkey",
    b"clientsecret",
    b"apikey",
    b"authorization",
    b"cvc",
    b"cvv",
    b"customeridentitynumber",
    b"identitynumber",
    b"encdata",
    b"pin",
];

/// Prefixes of API keys; the part after the prefix is the secret.
const API_KEY_PREFIXES: &[&[u8]] = &[b"test_sk_", b"live_sk_", b"test_ck_", b"live_ck_"];

/// Prefix of webhook signing secrets, whose body is base64.
const WEBHOOK_SECRET_PREFIX: &[u8] = b"whsec_";

/// HTTP authorization schemes whose following token is a credential.
const AUTH_SCHEMES: &[&[u8]] = &[b"basic", b"bearer"];

/// Words that follow `Basic`/`Bearer` in prose rather than in a header.
const AUTH_PROSE_WORDS: &[&[u8]] = &[
    b"auth",
    b"authentication",
    b"authorization",
    b"token",
    b"credentials",
    b"scheme",
    b"header",
];

const MIN_PAN_DIGITS: usize = 13;
const MAX_PAN_DIGITS: usize = 19;

/// Key tokens longer than this cannot be one of [`SECRET_KEYS`] even with
/// separators, and bounding the look-ahead keeps the scan linear.
const MAX_KEY_TOKEN: usize = 40;

/// Deepest JSON-in-JSON escaping we track; deeper quotes are treated as this
/// depth, which only ever makes a redacted region end early at an outer quote.
const MAX_NESTING: usize = 4;

const ESC: u8 = 0x1b;

/// Returns `line` with every secret replaced, borrowing it when there is none.
#[must_use]
pub fn redact(line: &str) -> Cow<'_, str> {
    let mut scanner = Scanner {
        src: line,
        bytes: line.as_bytes(),
        out: None,
        copied: 0,
        last_bare: (0, 0),
    };
    scanner.run();
    scanner.finish()
}

/// Where scanning resumes after a match, and whether that position starts a
/// new word (a value after `key: ` does even when a colour code precedes it).
type Resume = (usize, bool);

/// Single-pass scanner that copies the input lazily: output is only built once
/// the first replacement happens, which keeps clean lines allocation free.
struct Scanner<'a> {
    src: &'a str,
    bytes: &'a [u8],
    out: Option<Vec<u8>>,
    copied: usize,
    /// Extent of the last unquoted value found after a secret key.
    last_bare: (usize, usize),
}

impl<'a> Scanner<'a> {
    fn finish(self) -> Cow<'a, str> {
        let Some(mut out) = self.out else {
            return Cow::Borrowed(self.src);
        };
        out.extend_from_slice(self.bytes.get(self.copied..).unwrap_or_default());
        // Replacements only ever cut at ASCII bytes, so the result is valid
        // UTF-8; the lossy fallback exists so that a bug can never panic in
        // the logging path.
        match String::from_utf8(out) {
            Ok(s) => Cow::Owned(s),
            Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
        }
    }

    /// Byte at `i`, or 0 past the end, which matches no class we look for.
    fn at(&self, i: usize) -> u8 {
        self.bytes.get(i).copied().unwrap_or(0)
    }

    /// Replaces `bytes[start..end]` by `with`. A region overlapping one
    /// already replaced is clipped to its uncovered tail, which lets the
    /// scanner look inside redacted values for secrets reaching past them.
    fn replace(&mut self, start: usize, end: usize, with: &[u8]) {
        if end <= self.copied {
            return;
        }
        let start = start.max(self.copied);
        if self.bytes.get(start..end) == Some(with) {
            // Values the application already redacted need no copy.
            return;
        }
        let out = self
            .out
            .get_or_insert_with(|| Vec::with_capacity(self.bytes.len() + 16));
        out.extend_from_slice(self.bytes.get(self.copied..start).unwrap_or_default());
        out.extend_from_slice(with);
        self.copied = end;
    }

    fn run(&mut self) {
        let n = self.bytes.len();
        let mut i = 0;
        // True when the previous logical character cannot continue a word, so
        // that a digit or letter at `i` starts a new token.
        let mut boundary = true;
        while i < n {
            let c = self.at(i);
            if matches!(c, b't' | b'T' | b'l' | b'L' | b'w' | b'W') {
                // API keys are matched even inside words because a leaked key
                // glued to other text is still a leaked key.
                if let Some(end) = self.api_key(i) {
                    i = end;
                    boundary = false;
                    continue;
                }
            }
            match c {
                ESC => {
                    i = skip_csi(self.bytes, i);
                    boundary = true;
                }
                b'\\' => {
                    // `\n` and friends end with a letter but separate words,
                    // otherwise `card:\n4330...` in a JSON line would look
                    // like an identifier and leak.
                    i += if matches!(self.at(i + 1), b'n' | b't' | b'r' | b'b' | b'f') {
                        2
                    } else {
                        1
                    };
                    boundary = true;
                }
                b'0'..=b'9' if boundary => {
                    i = self.digit_run(i);
                    boundary = false;
                }
                b'A'..=b'Z' | b'a'..=b'z' if boundary => match self.word(i) {
                    Some((next, starts_word)) => {
                        i = next;
                        boundary = starts_word;
                    }
                    None => {
                        i += 1;
                        boundary = false;
                    }
                },
                _ => {
                    boundary = !c.is_ascii_alphanumeric();
                    i += 1;
                }
            }
        }
    }

    /// Masks the body of an API key or webhook secret starting at `i`.
    fn api_key(&mut self, i: usize) -> Option<usize> {
        let rest = self.bytes.get(i..).unwrap_or_default();
        let (prefix_len, is_body): (usize, fn(u8) -> bool) =
            if let Some(p) = API_KEY_PREFIXES.iter().find(|p| starts_with_ci(rest, p)) {
                (p.len(), |c| c.is_ascii_alphanumeric())
            } else if starts_with_ci(rest, WEBHOOK_SECRET_PREFIX) {
                (WEBHOOK_SECRET_PREFIX.len(), |c| {
                    c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=')
                })
            } else {
                return None;
            };
        let start = i + prefix_len;
        let end = scan_while(self.bytes, start, is_body);
        if end == start {
            // A bare prefix (for example in documentation) hides nothing.
            return None;
        }
        self.replace(start, end, REDACTED);
        Some(end)
    }

    /// Scans a run of digit groups starting at a word boundary and masks every
    /// PAN in it. Returns where scanning resumes.
    fn digit_run(&mut self, start: usize) -> usize {
        let first_end = scan_while(self.bytes, start, |c| c.is_ascii_digit());
        if start >= 2
            && self.at(start - 1) == b'.'
            && self.at(start - 2).is_ascii_digit()
            && self.next_group(first_end).is_none()
        {
            // The fraction of a decimal number such as a float duration. A
            // grouped number is never a fraction, so it is still checked.
            return first_end;
        }
        if self.at(first_end).is_ascii_alphabetic() {
            // Digits glued to letters belong to an identifier.
            return first_end;
        }
        let (mut group, mut group_end) = (start, first_end);
        loop {
            // Try candidates starting at `group`, extending over following
            // groups, and keep the longest Luhn-valid one. Trying every group
            // as a start matters: in `qty 2 4330 0000 0000 0003` the PAN does
            // not start at the first group.
            let mut digits = [0u8; MAX_PAN_DIGITS];
            let mut count = 0;
            let mut best: Option<(usize, usize)> = None;
            let (mut gs, mut ge) = (group, group_end);
            loop {
                let len = ge - gs;
                if count + len > MAX_PAN_DIGITS {
                    break;
                }
                let src = self.bytes.get(gs..ge).unwrap_or_default();
                for (slot, &d) in digits[count..count + len].iter_mut().zip(src) {
                    *slot = d - b'0';
                }
                count += len;
                if count >= MIN_PAN_DIGITS && luhn_valid(&digits[..count]) {
                    best = Some((ge, count));
                }
                match self.next_group(ge) {
                    Some((s, e)) => (gs, ge) = (s, e),
                    None => break,
                }
            }
            let resume = match best {
                Some((end, count)) => {
                    self.replace_pan(group, end, &digits[count - 4..count]);
                    end
                }
                None => group_end,
            };
            match self.next_group(resume) {
                Some((s, e)) => (group, group_end) = (s, e),
                None => return resume,
            }
        }
    }

    /// The digit group continuing a run after `end`, if a single space or
    /// hyphen joins it and it is not glued to letters.
    fn next_group(&self, end: usize) -> Option<(usize, usize)> {
        if !matches!(self.at(end), b' ' | b'-') || !self.at(end + 1).is_ascii_digit() {
            return None;
        }
        let group_end = scan_while(self.bytes, end + 1, |c| c.is_ascii_digit());
        if self.at(group_end).is_ascii_alphabetic() {
            return None;
        }
        Some((end + 1, group_end))
    }

    fn replace_pan(&mut self, start: usize, end: usize, last4: &[u8]) {
        let quote = self.json_number_quote(start, end);
        let mut with = Vec::with_capacity(24);
        if let Some(level) = quote {
            push_quote(&mut with, level);
        }
        with.extend_from_slice(b"[PAN ****");
        with.extend(last4.iter().map(|d| b'0' + d));
        with.push(b']');
        if let Some(level) = quote {
            push_quote(&mut with, level);
        }
        self.replace(start, end, &with);
    }

    /// When `start..end` is a bare JSON number value (`"key": 4330...`),
    /// returns the escaping depth of its key so the mask can be quoted and the
    /// line stays parseable JSON.
    fn json_number_quote(&self, start: usize, end: usize) -> Option<usize> {
        let mut p = start;
        while p > 0 && self.at(p - 1) == b' ' {
            p -= 1;
        }
        if p == 0 || self.at(p - 1) != b':' {
            return None;
        }
        p -= 1;
        while p > 0 && self.at(p - 1) == b' ' {
            p -= 1;
        }
        if p == 0 || self.at(p - 1) != b'"' {
            return None;
        }
        let r = backslashes_before(self.bytes, p - 1, 0);
        let q = scan_while(self.bytes, end, |c| c == b' ');
        match self.bytes.get(q) {
            None | Some(b',' | b'}' | b']') => Some(nesting_level(r)),
            _ => None,
        }
    }

    /// Handles a word starting at a boundary: an authorization scheme or a
    /// secret-bearing key. Returns where scanning resumes if it matched.
    fn word(&mut self, i: usize) -> Option<Resume> {
        let n = self.bytes.len();
        let mut end = i;
        while end < n && end - i <= MAX_KEY_TOKEN && is_key_char(self.at(end)) {
            end += 1;
        }
        if end - i > MAX_KEY_TOKEN {
            return None;
        }
        let token = self.bytes.get(i..end).unwrap_or_default();
        if AUTH_SCHEMES.iter().any(|s| token.eq_ignore_ascii_case(s)) {
            return self.auth_credential(end);
        }
        if i >= 2 && self.bytes.get(i - 2..i) == Some(b"::") {
            // A Rust path segment such as the log target `paygate::secret`.
            return None;
        }
        if is_secret_key(token) {
            return self.key_value(end);
        }
        None
    }

    /// Masks the credential after `Basic`/`Bearer` ending at `scheme_end`.
    fn auth_credential(&mut self, scheme_end: usize) -> Option<Resume> {
        if self.at(scheme_end) != b' ' {
            return None;
        }
        let start = scan_while(self.bytes, scheme_end, |c| c == b' ');
        let end = scan_while(self.bytes, start, is_auth_token_char);
        let token = self.bytes.get(start..end).unwrap_or_default();
        if token.is_empty() || AUTH_PROSE_WORDS.iter().any(|w| token.eq_ignore_ascii_case(w)) {
            return None;
        }
        self.replace(start, end, REDACTED);
        // Resume inside the credential rather than after it: in
        // `Bearer x-api-key: k` the "credential" hides a key whose value
        // follows it and must be found by the scanner.
        Some((start, true))
    }

    /// Masks the value after a secret-bearing key ending at `key_end`.
    fn key_value(&mut self, key_end: usize) -> Option<Resume> {
        let mut p = key_end;
        let r = count_while(self.bytes, p, b'\\');
        let key_level = if self.at(p + r) == b'"' {
            p += r + 1;
            Some(nesting_level(r))
        } else if r == 0 {
            None
        } else {
            return None;
        };
        p = skip_blank(self.bytes, p);
        let sep = self.at(p);
        if !matches!(sep, b':' | b'=') || (sep == b':' && self.at(p + 1) == b':') {
            return None;
        }
        p = skip_blank(self.bytes, p + 1);

        let r = count_while(self.bytes, p, b'\\');
        if self.at(p + r) == b'"' {
            let start = p + r + 1;
            let end = scan_string(self.bytes, start, nesting_level(r));
            if end > start {
                self.replace(start, end, REDACTED);
            }
            // Resume inside the value, as for bare values below: in
            // `cvc: \"pin\":\"1234\"` the "value" is really the next key.
            return Some((start, true));
        }
        match self.at(p) {
            b'\'' => {
                let start = p + 1;
                let end = scan_while(self.bytes, start, |c| c != b'\'');
                if end > start {
                    self.replace(start, end, REDACTED);
                }
                Some((start, true))
            }
            b'{' | b'[' => {
                let end = scan_balanced(self.bytes, p, key_level.unwrap_or(0));
                self.replace(p, end, &quoted_redacted(key_level));
                Some((end, false))
            }
            _ => {
                // A value nested in the previous bare value ends where that one
                // ended; skipping ahead keeps `a=a=a=...` linear.
                let from = if (self.last_bare.0..self.last_bare.1).contains(&p) {
                    self.last_bare.1
                } else {
                    p
                };
                let end = scan_while(self.bytes, from, is_bare_value_char);
                self.last_bare = (p, end);
                let value = self.bytes.get(p..end).unwrap_or_default();
                if value.is_empty() {
                    return None;
                }
                if self.at(end) == b' ' && AUTH_SCHEMES.iter().any(|s| value.eq_ignore_ascii_case(s)) {
                    // `Authorization: Basic xyz`: resume at the scheme so the
                    // credential after it is masked instead of the scheme.
                    return Some((p, true));
                }
                if key_level.is_some() && matches!(value, b"null" | b"true" | b"false") {
                    // JSON literals carry no secret; keeping them shows that
                    // the field was absent, which helps debugging.
                    return Some((end, false));
                }
                self.replace(p, end, &quoted_redacted(key_level));
                // Resume inside the value rather than after it: in
                // `cvc=x-api-key: k` the value hides a key whose own value
                // lies beyond it. `replace` never re-emits hidden bytes.
                Some((p, true))
            }
        }
    }
}

/// `[REDACTED]`, wrapped in quotes of the given escaping depth when the value
/// replaces a JSON non-string so that JSON lines stay parseable.
fn quoted_redacted(level: Option<usize>) -> Vec<u8> {
    let mut with = Vec::with_capacity(REDACTED.len() + 32);
    if let Some(level) = level {
        push_quote(&mut with, level);
    }
    with.extend_from_slice(REDACTED);
    if let Some(level) = level {
        push_quote(&mut with, level);
    }
    with
}

/// A JSON quote escaped for `level` levels of string nesting: `"`, `\"`,
/// `\\\"`, ...
fn push_quote(out: &mut Vec<u8>, level: usize) {
    let backslashes = (1usize << level.min(MAX_NESTING)) - 1;
    out.extend(std::iter::repeat_n(b'\\', backslashes));
    out.push(b'"');
}

/// Nesting depth of a quote preceded by `r` backslashes: each level of JSON
/// string escaping turns `k` backslashes into `2k + 1`.
fn nesting_level(mut r: usize) -> usize {
    let mut level = 0;
    while is_odd(r) && level < MAX_NESTING {
        r = (r - 1) / 2;
        level += 1;
    }
    level
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum QuoteRole {
    /// Closes a string at the depth we are scanning.
    Close,
    /// Closes an enclosing string, so the value cannot extend past it.
    Outer,
    /// Escaped quote inside the value.
    Content,
}

/// Decodes what a quote preceded by `r` backslashes means inside a string at
/// nesting depth `level`, peeling one level of escaping at a time.
fn quote_role(mut r: usize, level: usize) -> QuoteRole {
    for stage in 0..=level {
        if !is_odd(r) {
            return if stage == level {
                QuoteRole::Close
            } else {
                QuoteRole::Outer
            };
        }
        r = (r - 1) / 2;
    }
    QuoteRole::Content
}

/// End of the string content starting at `start` at depth `level`: the index
/// of the backslashes (if any) and quote that terminate it, or the line end.
/// An unterminated string is redacted up to the end of the line.
fn scan_string(b: &[u8], start: usize, level: usize) -> usize {
    let mut q = start;
    while q < b.len() {
        if b.get(q) == Some(&b'"') {
            let r = backslashes_before(b, q, start);
            if quote_role(r, level) != QuoteRole::Content {
                return q - r;
            }
        }
        q += 1;
    }
    b.len()
}

/// End (exclusive) of the JSON object or array starting at `start`, skipping
/// brackets inside strings of depth `level`.
fn scan_balanced(b: &[u8], start: usize, level: usize) -> usize {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut q = start;
    while let Some(&c) = b.get(q) {
        if c == b'"' {
            let r = backslashes_before(b, q, start);
            match quote_role(r, level) {
                QuoteRole::Outer => return q - r,
                QuoteRole::Close => in_string = !in_string,
                QuoteRole::Content => {}
            }
        } else if !in_string {
            match c {
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return q + 1;
                    }
                }
                _ => {}
            }
        }
        q += 1;
    }
    b.len()
}

/// Skips an ANSI colour sequence (`ESC [ 1;2;3 m`) starting at `i`, or just
/// the lone `ESC` if it is not one.
///
/// Only SGR sequences with numeric parameters are accepted, which is all that
/// tracing emits: the full CSI grammar would let a stray `ESC [` swallow a
/// following quote, backslash or the first letter of a key or API key,
/// hiding what comes after it from the scan. No secret pattern starts with
/// `m`.
fn skip_csi(b: &[u8], i: usize) -> usize {
    if b.get(i + 1) != Some(&b'[') {
        return i + 1;
    }
    let end = scan_while(b, i + 2, |c| c.is_ascii_digit() || matches!(c, b';' | b':'));
    // Real sequences carry small numbers; a long digit run after `ESC [` is
    // data, possibly a card number, that must still be scanned.
    let longest_number = b
        .get(i + 2..end)
        .unwrap_or_default()
        .split(|c| !c.is_ascii_digit())
        .map(<[u8]>::len)
        .max()
        .unwrap_or(0);
    if b.get(end) == Some(&b'm') && longest_number <= 3 {
        end + 1
    } else {
        i + 1
    }
}

/// Skips spaces, tabs and colour sequences between a key, its separator and
/// its value.
fn skip_blank(b: &[u8], mut p: usize) -> usize {
    loop {
        match b.get(p) {
            Some(b' ' | b'\t') => p += 1,
            Some(&ESC) => p = skip_csi(b, p),
            _ => return p,
        }
    }
}

fn scan_while(b: &[u8], mut i: usize, pred: impl Fn(u8) -> bool) -> usize {
    while let Some(&c) = b.get(i) {
        if !pred(c) {
            break;
        }
        i += 1;
    }
    i
}

fn count_while(b: &[u8], i: usize, byte: u8) -> usize {
    scan_while(b, i, |c| c == byte) - i
}

/// Number of backslashes directly before `q`, not looking before `floor`.
fn backslashes_before(b: &[u8], q: usize, floor: usize) -> usize {
    let mut p = q;
    while p > floor && b.get(p - 1) == Some(&b'\\') {
        p -= 1;
    }
    q - p
}

fn starts_with_ci(hay: &[u8], prefix: &[u8]) -> bool {
    hay.get(..prefix.len()).is_some_and(|h| h.eq_ignore_ascii_case(prefix))
}

fn is_key_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

fn is_auth_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=' | b'.' | b'_' | b'~' | b'-')
}

/// Characters that may continue an unquoted value after `key=` or `key: `.
fn is_bare_value_char(c: u8) -> bool {
    !(c.is_ascii_whitespace() || matches!(c, b',' | b'&' | b';' | b'}' | b']' | b'"' | b'\'' | b'\\' | ESC))
}

fn is_secret_key(token: &[u8]) -> bool {
    let mut buf = [0u8; MAX_KEY_TOKEN];
    let mut len = 0;
    for &c in token.iter().filter(|&&c| c != b'_' && c != b'-') {
        let Some(slot) = buf.get_mut(len) else {
            return false;
        };
        *slot = c.to_ascii_lowercase();
        len += 1;
    }
    let key = &buf[..len];
    SECRET_KEYS.contains(&key)
}

/// Written with a mask rather than `%` or `is_multiple_of`, which is newer
/// than the workspace's minimum Rust version.
fn is_odd(n: usize) -> bool {
    n & 1 == 1
}

/// Luhn check over digit values (0-9), most significant first.
fn luhn_valid(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if !is_odd(i) {
                d
            } else if d > 4 {
                // Doubling a digit above 4 gives two digits, which Luhn sums.
                d * 2 - 9
            } else {
                d * 2
            }
        })
        .sum();
    let remainder = sum % 10;
    remainder == 0
}

/// Longest partial line held back while waiting for its newline.
const MAX_PENDING: usize = 64 * 1024;

/// A [`MakeWriter`] whose writers pass every log line through [`redact`]
/// before handing it to the wrapped writer.
#[derive(Debug, Clone)]
pub struct RedactingMakeWriter<M> {
    inner: M,
}

impl<M> RedactingMakeWriter<M> {
    pub fn new(inner: M) -> Self {
        Self { inner }
    }
}

impl<'a, M> MakeWriter<'a> for RedactingMakeWriter<M>
where
    M: MakeWriter<'a>,
{
    type Writer = RedactingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter::new(self.inner.make_writer())
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        // Forwarded so that level- or target-based writer routing keeps working.
        RedactingWriter::new(self.inner.make_writer_for(meta))
    }
}

/// Writer that redacts whole lines. Redaction needs complete lines because a
/// secret split across two writes would not be recognised in either half, so
/// bytes are held until a newline arrives.
///
/// `flush` does not emit a partial line, for the same reason; the remainder is
/// written (redacted) when the writer is dropped, which tracing's fmt layer
/// does after every event. A partial line longer than 64 KiB is written in
/// pieces, cut just after a `,`, `;`, `&`, `}` or `]`: such a cut cannot split
/// a card number, key, token or unquoted value, but it can split a quoted
/// value of a secret-bearing key, whose tail would then be written. The fmt
/// layer writes each event with its newline in one call, so this only affects
/// other writers emitting huge newline-less output.
#[derive(Debug)]
pub struct RedactingWriter<W: io::Write> {
    inner: W,
    pending: Vec<u8>,
}

impl<W: io::Write> RedactingWriter<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            pending: Vec::new(),
        }
    }

    /// Writes out pieces of an over-long partial line to bound memory.
    fn spill(&mut self) -> io::Result<()> {
        while self.pending.len() > MAX_PENDING {
            let cut = safe_cut(&self.pending, MAX_PENDING);
            let written = write_redacted(&mut self.inner, self.pending.get(..cut).unwrap_or_default());
            self.pending.drain(..cut);
            written?;
        }
        Ok(())
    }
}

impl<W: io::Write> io::Write for RedactingWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut rest = data;
        while let Some(pos) = rest.iter().position(|&c| c == b'\n') {
            let (line, tail) = rest.split_at(pos + 1);
            rest = tail;
            if self.pending.is_empty() {
                // The usual case: a whole event in one write, no copy needed.
                write_redacted(&mut self.inner, line)?;
            } else {
                self.pending.extend_from_slice(line);
                let written = write_redacted(&mut self.inner, &self.pending);
                self.pending.clear();
                written?;
            }
        }
        if !rest.is_empty() {
            self.pending.extend_from_slice(rest);
            self.spill()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W: io::Write> Drop for RedactingWriter<W> {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            // A last line without a newline is still a log line; errors cannot
            // be reported from drop and a failing sink is not our concern here.
            let _ = write_redacted(&mut self.inner, &self.pending);
            self.pending.clear();
        }
    }
}

/// Redacts one line (with or without its trailing newline) and writes it in a
/// single call so that concurrent writers do not interleave within a line.
fn write_redacted<W: io::Write>(inner: &mut W, chunk: &[u8]) -> io::Result<()> {
    let (body, newline) = match chunk.split_last() {
        Some((b'\n', body)) => (body, true),
        _ => (chunk, false),
    };
    let mut redacted = match std::str::from_utf8(body) {
        Ok(text) => match redact(text) {
            Cow::Borrowed(_) => return inner.write_all(chunk),
            Cow::Owned(s) => s,
        },
        Err(_) => redact(&String::from_utf8_lossy(body)).into_owned(),
    };
    if newline {
        redacted.push('\n');
    }
    inner.write_all(redacted.as_bytes())
}

/// Where to cut an over-long partial line: just after the last byte within
/// `limit` that ends every unquoted value and token, so no PAN, key or token
/// straddles the cut. Without such a byte, cut at a UTF-8 boundary.
fn safe_cut(buf: &[u8], limit: usize) -> usize {
    let window = buf.get(..limit).unwrap_or(buf);
    if let Some(p) = window
        .iter()
        .rposition(|c| matches!(c, b',' | b';' | b'&' | b'}' | b']'))
    {
        return p + 1;
    }
    let mut cut = window.len();
    while cut > 1 && buf.get(cut).is_some_and(|&c| c & 0xc0 == 0x80) {
        cut -= 1;
    }
    cut
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    /// (name, input, expected output); expected == input means "untouched".
    type Case = (&'static str, &'static str, &'static str);

    fn check(cases: &[Case]) {
        for &(name, input, expected) in cases {
            let got = redact(input);
            assert_eq!(got, expected, "case {name:?}");
            if input == expected {
                assert!(matches!(got, Cow::Borrowed(_)), "case {name:?} should not allocate");
            }
        }
    }

    #[test]
    fn card_numbers() {
        check(&[
            (
                "plain",
                "charging card 4330000000000003 now",
                "charging card [PAN ****0003] now",
            ),
            ("spaced", "card 4330 0000 0000 0003.", "card [PAN ****0003]."),
            ("hyphenated", "card=4330-0000-0000-0003&x=1", "card=[PAN ****0003]&x=1"),
            ("13 digits", "pan 4222222222222", "pan [PAN ****2222]"),
            ("19 digits", "pan 4000000000000000006", "pan [PAN ****0006]"),
            (
                "json string",
                r#"{"cardNumber":"4330000000000003","amount":1000}"#,
                r#"{"cardNumber":"[PAN ****0003]","amount":1000}"#,
            ),
            (
                "json number stays valid json",
                r#"{"cardNumber":4330000000000003}"#,
                r#"{"cardNumber":"[PAN ****0003]"}"#,
            ),
            (
                "url query",
                "GET /v1/pay?cardNumber=4330000000000003&x=1",
                "GET /v1/pay?cardNumber=[PAN ****0003]&x=1",
            ),
            (
                "escaped json string",
                r#"{"body":"{\"cardNumber\":\"4330000000000003\"}"}"#,
                r#"{"body":"{\"cardNumber\":\"[PAN ****0003]\"}"}"#,
            ),
            (
                "escaped json number",
                r#"{"body":"{\"cardNumber\":4330000000000003}"}"#,
                r#"{"body":"{\"cardNumber\":\"[PAN ****0003]\"}"}"#,
            ),
            (
                "after json newline escape",
                r#"{"message":"card:\n4330000000000003"}"#,
                r#"{"message":"card:\n[PAN ****0003]"}"#,
            ),
            (
                "after ansi colour",
                "\x1b[3mcard\x1b[0m\x1b[2m=\x1b[0m4330000000000003",
                "\x1b[3mcard\x1b[0m\x1b[2m=\x1b[0m[PAN ****0003]",
            ),
            (
                "two in a row",
                "4330000000000003 4111111111111111",
                "[PAN ****0003] [PAN ****1111]",
            ),
            (
                "after a short number",
                "qty 2 4330 0000 0000 0003",
                "qty 2 [PAN ****0003]",
            ),
            ("after underscore", "ref_4330000000000003", "ref_[PAN ****0003]"),
            (
                "luhn invalid",
                "card 4330000000000004 declined",
                "card 4330000000000004 declined",
            ),
            ("20 digit run", "id 00004330000000000003", "id 00004330000000000003"),
            (
                "inside identifier",
                "pay_01J4330000000000003X",
                "pay_01J4330000000000003X",
            ),
            (
                "ulid",
                "payment pay_01JD5M7Q8R9S0T1V2W3X4Y5Z6A captured",
                "payment pay_01JD5M7Q8R9S0T1V2W3X4Y5Z6A captured",
            ),
            (
                "timestamp and amount",
                "ts=1700000000000 amount=150000",
                "ts=1700000000000 amount=150000",
            ),
            ("fraction", "elapsed=0.4330000000000003s", "elapsed=0.4330000000000003s"),
            ("grouped after a dot", "x 1.4330-0000-0000-0003", "x 1.[PAN ****0003]"),
            ("after a stray escape", "\x1b[=4330000000000003", "\x1b[=[PAN ****0003]"),
            (
                "reaching past a redacted value",
                "password=abc-4330 0000 0000 0003",
                "password=[REDACTED][PAN ****0003]",
            ),
            (
                "date time",
                "2024-01-15 12:30:45.123456Z",
                "2024-01-15 12:30:45.123456Z",
            ),
        ]);
    }

    #[test]
    fn api_keys_and_webhook_secrets() {
        check(&[
            (
                "test secret key",
                "key test_sk_AbC123xyz789 used",
                "key test_sk_[REDACTED] used",
            ),
            ("live secret key", "live_sk_Zz99Yy88", "live_sk_[REDACTED]"),
            (
                "test client key",
                "\"clientKey\":\"test_ck_D5GePWvyJnrK\"",
                "\"clientKey\":\"test_ck_[REDACTED]\"",
            ),
            ("live client key", "k=live_ck_OEP59LybZ8Bd&", "k=live_ck_[REDACTED]&"),
            ("glued to a word", "xtest_sk_abc1", "xtest_sk_[REDACTED]"),
            ("after a stray escape", "\x1b[?test_sk_abc1", "\x1b[?test_sk_[REDACTED]"),
            (
                "webhook secret",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw+/== loaded",
                "whsec_[REDACTED] loaded",
            ),
            (
                "bare prefix",
                "keys look like test_sk_ or whsec_",
                "keys look like test_sk_ or whsec_",
            ),
        ]);
    }

    #[test]
    fn authorization_values() {
        check(&[
            (
                "basic header",
                "Authorization: Basic dGVzdF9za19BYkMxMjM6",
                "Authorization: Basic [REDACTED]",
            ),
            (
                "bearer jwt",
                "authorization=Bearer eyJhbGci.eyJzdWIi.sig-_x",
                "authorization=Bearer [REDACTED]",
            ),
            ("lower case scheme", "bearer abc.def~", "bearer [REDACTED]"),
            ("bearer api key", "Bearer test_sk_abc", "Bearer [REDACTED]"),
            (
                "json header",
                r#"{"authorization":"Basic dGVz"}"#,
                r#"{"authorization":"[REDACTED]"}"#,
            ),
            (
                "debug header map",
                r#"{"authorization": "Bearer x1"}"#,
                r#"{"authorization": "[REDACTED]"}"#,
            ),
            (
                "prose",
                "missing Bearer token, Basic auth disabled",
                "missing Bearer token, Basic auth disabled",
            ),
        ]);
    }

    #[test]
    fn secret_fields() {
        check(&[
            ("key=value", "password=hunter2 user=bob", "password=[REDACTED] user=bob"),
            (
                "key=quoted",
                r#"password="hunter 2" user=bob"#,
                r#"password="[REDACTED]" user=bob"#,
            ),
            (
                "json card password",
                r#"{"cardPassword":"12"}"#,
                r#"{"cardPassword":"[REDACTED]"}"#,
            ),
            (
                "json identity number",
                r#"{"customerIdentityNumber":"900101","x":1}"#,
                r#"{"customerIdentityNumber":"[REDACTED]","x":1}"#,
            ),
            (
                "json with space",
                r#"{"secretKey": "abc"}"#,
                r#"{"secretKey": "[REDACTED]"}"#,
            ),
            (
                "json number",
                r#"{"cvc": 123, "x":1}"#,
                r#"{"cvc": "[REDACTED]", "x":1}"#,
            ),
            ("json null kept", r#"{"pin":null}"#, r#"{"pin":null}"#),
            (
                "json object",
                r#"{"secret":{"k":"v}"},"a":1}"#,
                r#"{"secret":"[REDACTED]","a":1}"#,
            ),
            (
                "json escaped quote in value",
                r#"{"password":"a\"b","a":1}"#,
                r#"{"password":"[REDACTED]","a":1}"#,
            ),
            (
                "escaped json",
                r#"{"message":"{\"password\":\"hunter2\",\"ok\":1}"}"#,
                r#"{"message":"{\"password\":\"[REDACTED]\",\"ok\":1}"}"#,
            ),
            (
                "escaped json with inner escaped quote",
                r#"{"m":"{\"passwd\":\"a\\\"b\",\"ok\":1}"}"#,
                r#"{"m":"{\"passwd\":\"[REDACTED]\",\"ok\":1}"}"#,
            ),
            (
                "escaped json number",
                r#"{"m":"{\"cvv\":123}"}"#,
                r#"{"m":"{\"cvv\":\"[REDACTED]\"}"}"#,
            ),
            (
                "double escaped json",
                r#"{"m":"{\"b\":\"{\\\"pin\\\":\\\"1234\\\"}\"}"}"#,
                r#"{"m":"{\"b\":\"{\\\"pin\\\":\\\"[REDACTED]\\\"}\"}"}"#,
            ),
            ("key: value", "secret_key: abc123; next", "secret_key: [REDACTED]; next"),
            (
                "url query",
                "/cb?client-secret=abc&x=1",
                "/cb?client-secret=[REDACTED]&x=1",
            ),
            ("upper case", "API_KEY=abc", "API_KEY=[REDACTED]"),
            (
                "suffix of a longer key",
                "db_password=abc x-api-key: k1",
                "db_password=[REDACTED] x-api-key: [REDACTED]",
            ),
            (
                "enc data",
                "encData=AbC+/= pin=1234",
                "encData=[REDACTED] pin=[REDACTED]",
            ),
            (
                "identity number",
                "identity_number=9001011234567",
                "identity_number=[REDACTED]",
            ),
            (
                "debug struct",
                r#"Card { cvc: "123", expiry: "12/30" }"#,
                r#"Card { cvc: "[REDACTED]", expiry: "12/30" }"#,
            ),
            ("single quotes", "password='a b'", "password='[REDACTED]'"),
            (
                "ansi text field",
                "\x1b[3mpassword\x1b[0m\x1b[2m=\x1b[0mhunter2 x",
                "\x1b[3mpassword\x1b[0m\x1b[2m=\x1b[0m[REDACTED] x",
            ),
            (
                "already redacted",
                r#"{"password":"[REDACTED]"}"#,
                r#"{"password":"[REDACTED]"}"#,
            ),
            ("empty value", r#"{"password":""}"#, r#"{"password":""}"#),
            (
                "rust path target",
                "INFO paygate::secret: loaded 3",
                "INFO paygate::secret: loaded 3",
            ),
            ("key without value", "the password is wrong", "the password is wrong"),
            ("longer key", "passwordless=true", "passwordless=true"),
            ("value hiding a key", "cvc=x-api-key: k1", "cvc=[REDACTED] [REDACTED]"),
            (
                "credential hiding a key",
                "Bearer x-api-key: k1",
                "Bearer [REDACTED]: [REDACTED]",
            ),
            (
                "quoted value that is a key",
                r#"cvc: \"pin\":\"1234\""#,
                r#"cvc: \"[REDACTED]\":\"[REDACTED]\""#,
            ),
        ]);
    }

    #[test]
    fn clean_lines_are_borrowed() {
        check(&[
            ("empty", "", ""),
            (
                "request log",
                "2025-01-01T00:00:00Z INFO paygate: GET /v1/payments/pay_01JD5M7Q8R9S0T1V2W3X4Y5Z6A 200 amount=15000 currency=KRW",
                "2025-01-01T00:00:00Z INFO paygate: GET /v1/payments/pay_01JD5M7Q8R9S0T1V2W3X4Y5Z6A 200 amount=15000 currency=KRW",
            ),
            (
                "json line",
                r#"{"level":"INFO","fields":{"message":"ok","status":200},"target":"paygate"}"#,
                r#"{"level":"INFO","fields":{"message":"ok","status":200},"target":"paygate"}"#,
            ),
            ("non ascii", "결제 완료 — 15000원", "결제 완료 — 15000원"),
        ]);
    }

    #[test]
    fn writer_handles_line_splitting() {
        let cases: &[(&str, &[&str], &str)] = &[
            ("one line", &["card 4330000000000003\n"], "card [PAN ****0003]\n"),
            (
                "two lines in one write",
                &["a 4330000000000003\nb password=x\n"],
                "a [PAN ****0003]\nb password=[REDACTED]\n",
            ),
            (
                "pan split across writes",
                &["card 4330 0000", " 0000 0003\n"],
                "card [PAN ****0003]\n",
            ),
            (
                "remainder written on drop",
                &["done\nkey test_sk_abc"],
                "done\nkey test_sk_[REDACTED]",
            ),
            ("clean lines pass through", &["a\n", "", "b\n"], "a\nb\n"),
        ];
        for &(name, writes, expected) in cases {
            let mut sink = Vec::new();
            {
                let mut writer = RedactingWriter::new(&mut sink);
                for w in writes {
                    writer.write_all(w.as_bytes()).unwrap();
                }
                writer.flush().unwrap();
            }
            assert_eq!(String::from_utf8(sink).unwrap(), expected, "case {name:?}");
        }
    }

    #[test]
    fn writer_bounds_long_partial_lines() {
        let filler = "ab,".repeat((MAX_PENDING - 8) / 3);
        let pan_line = format!("{filler}4330 0000 0000 0003 tail");
        let clean_line = "x".repeat(MAX_PENDING * 2 + 5);
        let cases: &[(&str, &str)] = &[("pan across the bound", &pan_line), ("no cut point", &clean_line)];
        for &(name, line) in cases {
            let mut sink = Vec::new();
            {
                let mut writer = RedactingWriter::new(&mut sink);
                writer.write_all(line.as_bytes()).unwrap();
                assert!(writer.pending.len() <= MAX_PENDING, "case {name:?}");
            }
            let out = String::from_utf8(sink).unwrap();
            assert_eq!(out, redact(line), "case {name:?}");
        }
    }

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn log_secrets() {
        tracing::info!(
            card = "4330000000000003",
            merchant_key = %"test_sk_AbC123xyz789",
            password = "hunter2",
            body = r#"{"cvc":"cvc-987","customerIdentityNumber":"900101-1234567"}"#,
            "charging card 4330 0000 0000 0003 with key live_sk_Zz99Yy88"
        );
        tracing::warn!("second event 4111-1111-1111-1111");
    }

    #[test]
    fn subscriber_output_is_redacted() {
        type Build = fn(Capture) -> tracing::Dispatch;
        let formats: &[(&str, Build)] = &[
            ("text", |c| {
                let w = RedactingMakeWriter::new(move || c.clone());
                tracing::Dispatch::new(
                    tracing_subscriber::fmt()
                        .with_writer(w)
                        .with_ansi(false)
                        .without_time()
                        .finish(),
                )
            }),
            ("text with ansi", |c| {
                let w = RedactingMakeWriter::new(move || c.clone());
                tracing::Dispatch::new(
                    tracing_subscriber::fmt()
                        .with_writer(w)
                        .with_ansi(true)
                        .without_time()
                        .finish(),
                )
            }),
            ("json", |c| {
                let w = RedactingMakeWriter::new(move || c.clone());
                tracing::Dispatch::new(tracing_subscriber::fmt().json().with_writer(w).without_time().finish())
            }),
        ];
        for &(name, build) in formats {
            let capture = Capture::default();
            let dispatch = build(capture.clone());
            tracing::dispatcher::with_default(&dispatch, log_secrets);
            let out = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
            assert_eq!(out.lines().count(), 2, "{name}: {out}");
            for leaked in [
                "4330000000000003",
                "4330 0000 0000 0003",
                "4111-1111-1111-1111",
                "AbC123xyz789",
                "Zz99Yy88",
                "hunter2",
                "cvc-987",
                "1234567",
            ] {
                assert!(!out.contains(leaked), "{name}: {leaked:?} leaked in {out}");
            }
            for kept in [
                "[PAN ****0003]",
                "[PAN ****1111]",
                "test_sk_[REDACTED]",
                "live_sk_[REDACTED]",
            ] {
                assert!(out.contains(kept), "{name}: {kept:?} missing in {out}");
            }
        }
    }
}
