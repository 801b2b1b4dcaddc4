//! Observational memory (seed 003 "Memory System"): the Observer
//! compresses raw history (activity and conversation) into dated
//! observations once enough of it is unobserved; the Reflector condenses
//! observations once they grow past their own threshold; and working
//! memory learns inferred profile values from the same history. Pure:
//! windows, prompts, and reading the model's reply — with the guards
//! against the known failures (an empty, failed or looping reply is
//! rejected and changes nothing; a reflection must be shorter than what
//! it condenses; an inferred value must be found in what it was inferred
//! from).

use super::item::{Kind, Stream};
use super::profile::KEYS;
use super::query::format_time;
use crate::llm::tokens;
use crate::usage::period::{civil_from_days, days_from_civil, DAY_MS};
use serde_json::{json, Value};
use std::collections::HashSet;

/// One piece of raw history.
#[derive(Debug, Clone, PartialEq)]
pub struct Raw {
    /// Its memory item.
    pub item_id: i64,
    /// activity or conversation.
    pub kind: Kind,
    /// Its stream (the person's own chat is `chat`).
    pub stream: Stream,
    /// Its source's id.
    pub source_id: String,
    /// When (Unix ms).
    pub time_ms: i64,
    /// Its text.
    pub text: String,
}

/// One observation (or reflection) the model wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// What was observed.
    pub text: String,
    /// The day it refers to (Unix ms of its UTC midnight).
    pub refers_ms: i64,
    /// The sources it was made from.
    pub sources: Vec<String>,
}

/// Why a reply changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    /// No usable line.
    #[error("the model wrote no observation")]
    Empty,
    /// The same lines or words over and over.
    #[error("the model's reply loops (the same lines again and again)")]
    Looping,
    /// A reflection no shorter than what it condenses.
    #[error("the reflection ({0} tokens) is not shorter than the observations ({1} tokens)")]
    NotShorter(u64, u64),
}

/// The longest observation kept (characters).
pub const MAX_OBSERVATION: usize = 300;
/// The shortest line taken for an observation (characters).
const MIN_OBSERVATION: usize = 12;
/// Characters of one raw entry shown to the Observer.
const ENTRY_CHARS: usize = 600;

/// Estimated tokens of raw history.
pub fn tokens_of<'a>(texts: impl IntoIterator<Item = &'a str>) -> u64 {
    tokens::estimate_all(texts)
}

/// How many of `entries` (oldest first) one Observer call takes: as many
/// as fit in `max_tokens`, at least one.
pub fn window(entries: &[Raw], max_tokens: u64) -> usize {
    let mut used = 0;
    for (i, e) in entries.iter().enumerate() {
        used += tokens::estimate(e.text.len().min(ENTRY_CHARS) + 40);
        if used > max_tokens {
            return i.max(1);
        }
    }
    entries.len()
}

fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS) * DAY_MS
}

fn cut(text: &str, chars: usize) -> String {
    let t = text.trim();
    match t.char_indices().nth(chars) {
        Some((i, _)) => format!("{}…", &t[..i]),
        None => t.to_owned(),
    }
}

/// The Observer's request for `entries`.
pub fn observe_prompt(entries: &[Raw]) -> Vec<Value> {
    let mut log = String::new();
    for e in entries {
        log += &format!(
            "[{}] ({}) {}\n",
            format_time(e.time_ms),
            e.kind,
            cut(&e.text, ENTRY_CHARS).replace('\n', " / ")
        );
    }
    vec![
        json!({"role": "system", "content":
            "You compress a person's activity and conversation log into observations. \
             Write one observation per line, each starting with the date it refers to as \
             YYYY-MM-DD and a colon. Keep names, numbers and identifiers exactly as written. \
             Write only observations."}),
        json!({"role": "user", "content": format!("Log:\n{log}\nObservations:")}),
    ]
}

/// The Reflector's request for `observations` (text, day).
pub fn reflect_prompt(observations: &[(String, i64)]) -> Vec<Value> {
    let mut list = String::new();
    for (text, day) in observations {
        list += &format!("{}: {text}\n", date(*day));
    }
    vec![
        json!({"role": "system", "content":
            "You condense a person's dated observations: merge the ones about the same thing, \
             drop what is repeated, keep names, numbers and identifiers exactly. Write one \
             observation per line, starting with its date as YYYY-MM-DD and a colon. Write only \
             observations."}),
        json!({"role": "user", "content": format!("Observations:\n{list}\nCondensed:")}),
    ]
}

/// "2026-12-04" of a day.
fn date(ms: i64) -> String {
    let (y, m, d) = civil_from_days(ms.div_euclid(DAY_MS));
    format!("{y:04}-{m:02}-{d:02}")
}

/// A leading "YYYY-MM-DD" and the rest of the line.
fn leading_date(line: &str) -> Option<(i64, &str)> {
    let b = line.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y: i64 = line.get(0..4)?.parse().ok()?;
    let m: u32 = line.get(5..7)?.parse().ok()?;
    let d: u32 = line.get(8..10)?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let rest = line[10..].trim_start_matches([':', ' ', '-', '—', ')', ']', '\t']);
    Some((days_from_civil(y, m, d) * DAY_MS, rest))
}

/// A line without its list numbering ("2. ", "3) ").
fn strip_numbering(line: &str) -> &str {
    let digits = line.len() - line.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let rest = &line[digits..];
    if digits > 0 && digits <= 3 && (rest.starts_with(". ") || rest.starts_with(") ")) {
        rest[2..].trim()
    } else {
        line.trim()
    }
}

/// Does `reply` loop: few distinct lines among many, or one run of eight
/// words said three times or more?
pub fn is_looping(reply: &str) -> bool {
    let lines: Vec<String> = reply
        .lines()
        .map(|l| l.trim().to_lowercase())
        .filter(|l| !l.is_empty())
        .collect();
    if lines.len() >= 4 {
        let distinct: HashSet<&String> = lines.iter().collect();
        if distinct.len() * 2 < lines.len() {
            return true;
        }
    }
    let words: Vec<String> = reply.split_whitespace().map(|w| w.to_lowercase()).collect();
    let mut seen: std::collections::HashMap<&[String], u32> = Default::default();
    for run in words.windows(8) {
        let n = seen.entry(run).or_default();
        *n += 1;
        if *n >= 3 {
            return true;
        }
    }
    false
}

/// The observations in `reply` about `entries`: one per line with a
/// date (a date outside the window's days, or none, is the day of the
/// window's last entry), bullets and numbering taken off, cut to
/// [`MAX_OBSERVATION`], each once; its sources are the entries of its
/// day. Rejected when empty or looping.
pub fn parse_observations(reply: &str, entries: &[Raw]) -> Result<Vec<Observation>, Reject> {
    if is_looping(reply) {
        return Err(Reject::Looping);
    }
    let days: HashSet<i64> = entries.iter().map(|e| day_of(e.time_ms)).collect();
    let last_day = entries.last().map_or(0, |e| day_of(e.time_ms));
    let mut out: Vec<Observation> = Vec::new();
    let mut seen = HashSet::new();
    for line in reply.lines() {
        let line = strip_numbering(line.trim().trim_start_matches(['-', '*', '•', ' ']));
        let (day, text) = match leading_date(line) {
            Some((d, rest)) if days.contains(&d) => (d, rest),
            Some((_, rest)) => (last_day, rest),
            None => (last_day, line),
        };
        let text = cut(text, MAX_OBSERVATION);
        if text.chars().count() < MIN_OBSERVATION || !text.chars().any(char::is_alphabetic) {
            continue;
        }
        if !seen.insert(normalize(&text)) {
            continue;
        }
        let mut sources: Vec<String> = Vec::new();
        for e in entries.iter().filter(|e| day_of(e.time_ms) == day) {
            if !sources.contains(&e.source_id) {
                sources.push(e.source_id.clone());
            }
        }
        out.push(Observation {
            text,
            refers_ms: day,
            sources,
        });
    }
    if out.is_empty() {
        return Err(Reject::Empty);
    }
    Ok(out)
}

/// The reflections in `reply` condensing `inputs` (text, day, sources):
/// like observations, and shorter in all than the inputs, or rejected
/// (the inputs then stay as they are). Each keeps the sources of the
/// inputs of its day.
pub fn parse_reflection(
    reply: &str,
    inputs: &[(String, i64, Vec<String>)],
) -> Result<Vec<Observation>, Reject> {
    let as_raw: Vec<Raw> = inputs
        .iter()
        .map(|(t, d, _)| Raw {
            item_id: 0,
            kind: Kind::Observation,
            stream: Stream::Observation,
            source_id: String::new(),
            time_ms: *d,
            text: t.clone(),
        })
        .collect();
    let mut out = parse_observations(reply, &as_raw)?;
    let before = tokens_of(inputs.iter().map(|i| i.0.as_str()));
    let after = tokens_of(out.iter().map(|o| o.text.as_str()));
    if after >= before {
        return Err(Reject::NotShorter(after, before));
    }
    for o in &mut out {
        let mut s: Vec<String> = inputs
            .iter()
            .filter(|i| i.1 == o.refers_ms)
            .flat_map(|i| i.2.iter().cloned())
            .collect();
        s.sort();
        s.dedup();
        o.sources = s;
    }
    Ok(out)
}

/// An observation's text as its duplicates share it (case, spaces and
/// punctuation at the ends ignored).
pub fn normalize(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
        .trim_matches(|c: char| !c.is_alphanumeric())
        .to_owned()
}

/// What the person wrote in `entries`: their own chat messages (an
/// indexed message is `user: …` after the start of the one before).
pub fn said(entries: &[Raw]) -> Vec<String> {
    entries
        .iter()
        .filter(|e| e.stream == Stream::Chat)
        .filter_map(|e| {
            let said = match e.text.rfind("\nuser: ") {
                Some(i) => &e.text[i + "\nuser: ".len()..],
                None => e.text.strip_prefix("user: ")?,
            };
            // An answer is indexed after the question it answers: the
            // person's words are only those not followed by the answer.
            (!said.contains("\nassistant: ")).then_some(said)
        })
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect()
}

/// The request for profile values in what the person said.
pub fn profile_prompt(said: &[String]) -> Vec<Value> {
    let keys = KEYS.join(", ");
    vec![
        json!({"role": "system", "content": format!(
            "From what a person wrote, note facts about them as `key: value` lines, with keys \
             from: {keys}. Only what they said about themselves; write nothing when nothing \
             fits.")}),
        json!({"role": "user", "content": format!("They wrote:\n{}\n\nFacts:", said.join("\n"))}),
    ]
}

/// The profile values in `reply` that are grounded in `said`: a known
/// key, a value of 2 to 200 characters, most of whose words the person
/// wrote (a value the model made up is dropped).
pub fn parse_profile(reply: &str, said: &[String]) -> Vec<(String, String)> {
    if is_looping(reply) {
        return Vec::new();
    }
    let words: HashSet<String> = said
        .iter()
        .flat_map(|s| s.split(|c: char| !c.is_alphanumeric()))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let mut out: Vec<(String, String)> = Vec::new();
    for line in reply.lines() {
        let line = line.trim().trim_start_matches(['-', '*', '•', ' ']);
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let key = k.trim().to_lowercase().replace([' ', '-'], "_");
        let value = v.trim().trim_matches(['"', '`', '.']).trim();
        if !KEYS.contains(&key.as_str()) || !(2..=200).contains(&value.chars().count()) {
            continue;
        }
        let vw: Vec<String> = value
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect();
        let found = vw.iter().filter(|w| words.contains(*w)).count();
        if vw.is_empty() || found * 2 < vw.len() + 1 {
            continue;
        }
        if !out.iter().any(|(k2, _)| *k2 == key) {
            out.push((key, value.to_owned()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 1_796_342_400_000; // 2026-12-04

    fn raw(id: i64, day: i64, text: &str) -> Raw {
        Raw {
            item_id: id,
            kind: Kind::Activity,
            stream: Stream::Window,
            source_id: format!("activity:{id}"),
            time_ms: day + 3_600_000,
            text: text.into(),
        }
    }

    #[test]
    fn observations_are_dated_deduplicated_and_sourced() {
        let entries = vec![
            raw(1, DAY - DAY_MS, "Firefox — invoice INV-20931"),
            raw(2, DAY, "Slack — lunch"),
        ];
        let reply = "- 2026-12-03: Looked at Acme invoice INV-20931 in Firefox\n\
                     2. 2026-12-04: Talked about lunch on Slack\n\
                     2026-12-04: talked about lunch on Slack.\n\
                     ok\n\
                     1999-01-01: A date outside the window";
        let obs = parse_observations(reply, &entries).unwrap();
        assert_eq!(obs.len(), 3, "{obs:?}");
        assert_eq!(obs[0].text, "Looked at Acme invoice INV-20931 in Firefox");
        assert_eq!(obs[0].refers_ms, DAY - DAY_MS);
        assert_eq!(obs[0].sources, ["activity:1"]);
        assert_eq!(obs[1].refers_ms, DAY);
        assert_eq!(obs[2].refers_ms, DAY, "outside the window: the last day");
        assert_eq!(parse_observations("", &entries), Err(Reject::Empty));
        assert_eq!(parse_observations("ok\n\n--", &entries), Err(Reject::Empty));
    }

    #[test]
    fn looping_replies_are_rejected() {
        let looped = "2026-12-04: a thing\n".repeat(6);
        assert_eq!(
            parse_observations(&looped, &[raw(1, DAY, "x")]),
            Err(Reject::Looping)
        );
        let words = "it can be used as a face mask or body lotion ".repeat(4);
        assert!(is_looping(&words));
        assert!(!is_looping(
            "2026-12-04: one\n2026-12-04: two\n2026-12-04: three\n2026-12-04: four"
        ));
    }

    #[test]
    fn a_reflection_must_be_shorter_and_keeps_its_days_sources() {
        let inputs = vec![
            (
                "Looked at the Acme invoice INV-20931 in the billing portal".to_owned(),
                DAY,
                vec!["activity:1".to_owned()],
            ),
            (
                "Opened the Acme invoice INV-20931 again to check the amount".to_owned(),
                DAY,
                vec!["activity:2".to_owned()],
            ),
        ];
        let r =
            parse_reflection("2026-12-04: Checked Acme invoice INV-20931 twice", &inputs).unwrap();
        assert_eq!(r[0].sources, ["activity:1", "activity:2"]);
        let words: Vec<String> = (0..60).map(|i| format!("word{i}")).collect();
        let longer = format!("2026-12-04: {}", words.join(" "));
        assert!(matches!(
            parse_reflection(&longer, &inputs),
            Err(Reject::NotShorter(_, _))
        ));
    }

    #[test]
    fn windows_fit_the_budget_and_take_at_least_one() {
        let e: Vec<Raw> = (0..10).map(|i| raw(i, DAY, &"x".repeat(400))).collect();
        assert_eq!(window(&e, 300), 2);
        assert_eq!(window(&e, 1), 1);
        assert_eq!(window(&e, 100_000), 10);
    }

    #[test]
    fn only_the_persons_own_words_are_what_they_said() {
        let chat = |text: &str| Raw {
            stream: Stream::Chat,
            kind: Kind::Conversation,
            ..raw(1, DAY, text)
        };
        let entries = vec![
            chat("user: I'm Ann"),
            chat("user: I'm Ann\nassistant: Hello Ann, I'm your assistant"),
            chat("assistant: Hello Ann\nuser: I lead the billing team"),
            raw(2, DAY, "user: typed in a window title"),
        ];
        assert_eq!(said(&entries), ["I'm Ann", "I lead the billing team"]);
    }

    #[test]
    fn inferred_profile_values_must_be_in_what_the_person_wrote() {
        let said =
            vec!["I'm Ann, a staff engineer on the billing team; I like short answers".to_owned()];
        let got = parse_profile(
            "name: Ann\nrole: staff engineer\ngoals: become CEO of Mars\ncolour: blue\nname: Bob",
            &said,
        );
        assert_eq!(
            got,
            [
                ("name".to_owned(), "Ann".to_owned()),
                ("role".to_owned(), "staff engineer".to_owned())
            ]
        );
        assert!(normalize("  Looked at   X. ") == "looked at x");
    }
}
