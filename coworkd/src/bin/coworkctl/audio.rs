//! `coworkctl audio`: the audio stream (recording, in capture-agent) and
//! its transcription (agents-agent): status, consent, transcripts.

use crate::capture::parse_duration_ms;
use crate::context::{age, call, now_unix_ms, Ctx};
use anyhow::Result;
use clap::Subcommand;
use cowork_proto::pb::audio::{self as pb, audio_client::AudioClient};
use cowork_proto::pb::capture::{self as cpb, capture_client::CaptureClient};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::process::ExitCode;

/// `coworkctl audio`.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Recording (source, segments) and transcription (model, queue).
    Status,
    /// Turn the audio stream on: the microphone is recorded in
    /// voice-gated segments and transcribed on this machine.
    Enable,
    /// Turn it off: the microphone is no longer read; the segment being
    /// recorded is dropped.
    Disable,
    /// Transcripts, newest first.
    Transcripts {
        /// Only audio from this long ago on (e.g. 90s, 10m, 2h, 7d).
        #[arg(long, value_name = "DURATION")]
        since: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

/// Run an `audio` command.
pub async fn run(cmd: Cmd, ctx: &mut Ctx) -> Result<ExitCode> {
    let now = now_unix_ms();
    match cmd {
        Cmd::Status => {
            let rec = CaptureClient::new(ctx.channel.clone())
                .get_status(call(cpb::GetStatusRequest {}))
                .await?
                .into_inner();
            let tr = AudioClient::new(ctx.channel.clone())
                .get_status(call(pb::GetStatusRequest {}))
                .await?
                .into_inner();
            let stream = rec.streams.iter().find(|s| s.name == "audio").cloned();
            let recorder = rec.audio.unwrap_or_default();
            ctx.show_block(
                || status_json(stream.as_ref(), &recorder, &tr),
                || status_text(stream.as_ref(), &recorder, &tr, now),
            )?;
        }
        Cmd::Enable | Cmd::Disable => {
            let enabled = matches!(cmd, Cmd::Enable);
            let r = CaptureClient::new(ctx.channel.clone())
                .set_stream_enabled(call(cpb::SetStreamEnabledRequest {
                    stream: "audio".into(),
                    enabled,
                }))
                .await?
                .into_inner();
            let on = r.stream.is_some_and(|s| s.enabled);
            ctx.show(
                || json!({"stream": "audio", "enabled": on}),
                || {
                    if on {
                        "audio: on (recorded in voice-gated segments, transcribed on this \
                         machine; nothing is sent anywhere)"
                            .into()
                    } else {
                        "audio: off".into()
                    }
                },
            )?;
        }
        Cmd::Transcripts { since, limit } => {
            let since_unix_ms = match since {
                None => 0,
                Some(d) => now - parse_duration_ms(&d).map_err(anyhow::Error::msg)?,
            };
            let r = AudioClient::new(ctx.channel.clone())
                .list_transcripts(call(pb::ListTranscriptsRequest {
                    since_unix_ms,
                    limit,
                }))
                .await?
                .into_inner();
            ctx.show_block(|| transcripts_json(&r), || transcripts_text(&r, now))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `audio status --json`.
pub fn status_json(
    stream: Option<&cpb::StreamStatus>,
    rec: &cpb::AudioRecorderStatus,
    tr: &pb::GetStatusResponse,
) -> Value {
    json!({
        "enabled": stream.is_some_and(|s| s.enabled),
        "recording": {
            "source": rec.source, "state": rec.state, "detail": rec.detail,
            "segments": rec.segments, "last_segment_unix_ms": rec.last_segment_unix_ms,
            "dropped_blocks": rec.dropped_blocks, "folder": rec.folder,
        },
        "transcription": {
            "state": tr.state, "detail": tr.detail, "model": tr.model,
            "model_path": tr.model_path, "model_reason": tr.model_reason,
            "model_loaded": tr.model_loaded, "pending": tr.pending,
            "transcripts": tr.transcripts, "last_audio_ms": tr.last_audio_ms,
            "last_took_ms": tr.last_took_ms, "last_rtf": tr.last_rtf,
            "keep_audio": tr.keep_audio, "cloud": tr.cloud,
        },
    })
}

/// `audio status` in words.
pub fn status_text(
    stream: Option<&cpb::StreamStatus>,
    rec: &cpb::AudioRecorderStatus,
    tr: &pb::GetStatusResponse,
    now_ms: i64,
) -> String {
    let mut out = String::new();
    let on = stream.is_some_and(|s| s.enabled);
    let _ = writeln!(
        out,
        "audio: {}",
        if on {
            "on"
        } else {
            "off (coworkctl audio enable)"
        }
    );
    let _ = writeln!(
        out,
        "recording: {} ({}): {}",
        rec.state, rec.source, rec.detail
    );
    let _ = writeln!(
        out,
        "  segments: {}  last: {}  dropped blocks: {}  folder: {}",
        rec.segments,
        rec.last_segment_unix_ms
            .map(|t| age(now_ms, t))
            .unwrap_or_else(|| "-".into()),
        rec.dropped_blocks,
        rec.folder
    );
    let _ = writeln!(out, "transcription: {}: {}", tr.state, tr.detail);
    if !tr.model.is_empty() {
        let _ = writeln!(
            out,
            "  model: {} ({}; {}) {}",
            tr.model,
            if tr.model_loaded {
                "loaded"
            } else {
                "not loaded"
            },
            tr.model_reason,
            tr.model_path
        );
    }
    let _ = writeln!(
        out,
        "  pending: {}  transcripts: {}  keep audio: {}",
        tr.pending,
        tr.transcripts,
        if tr.keep_audio {
            "yes"
        } else {
            "no (deleted once transcribed)"
        }
    );
    if tr.last_audio_ms > 0 {
        let _ = writeln!(
            out,
            "  last: {:.1} s of audio in {:.1} s (real-time factor {:.2})",
            tr.last_audio_ms as f64 / 1000.0,
            tr.last_took_ms as f64 / 1000.0,
            tr.last_rtf
        );
    }
    let _ = writeln!(out, "cloud: {}", tr.cloud);
    out
}

/// `audio transcripts --json`.
pub fn transcripts_json(r: &pb::ListTranscriptsResponse) -> Value {
    json!({"transcripts": r.transcripts.iter().map(|t| json!({
        "segment_id": t.segment_id, "started_unix_ms": t.started_unix_ms,
        "ended_unix_ms": t.ended_unix_ms, "status": t.status, "text": t.text,
        "segments": t.segments.iter().map(|s| json!({
            "start_ms": s.start_ms, "end_ms": s.end_ms, "text": s.text,
        })).collect::<Vec<_>>(),
        "model": t.model, "took_ms": t.took_ms, "cloud": t.cloud,
        "error": if t.error.is_empty() { Value::Null } else { json!(t.error) },
        "audio_kept": t.audio_kept,
    })).collect::<Vec<_>>()})
}

/// `audio transcripts` in words: each transcript with its timed pieces.
pub fn transcripts_text(r: &pb::ListTranscriptsResponse, now_ms: i64) -> String {
    if r.transcripts.is_empty() {
        return "no transcripts yet\n".into();
    }
    let mut out = String::new();
    for t in &r.transcripts {
        let secs = (t.ended_unix_ms - t.started_unix_ms) as f64 / 1000.0;
        let _ = writeln!(
            out,
            "#{} {} ({:.1} s, {}, {}){}",
            t.segment_id,
            age(now_ms, t.started_unix_ms),
            secs,
            t.model,
            t.status,
            if t.error.is_empty() {
                String::new()
            } else {
                format!(": {}", t.error)
            }
        );
        for s in &t.segments {
            let _ = writeln!(
                out,
                "  [{:>5.1}–{:>5.1}] {}",
                s.start_ms as f64 / 1000.0,
                s.end_ms as f64 / 1000.0,
                s.text
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcripts_in_words_and_json() {
        let r = pb::ListTranscriptsResponse {
            transcripts: vec![pb::Transcript {
                segment_id: 3,
                started_unix_ms: 1_000,
                ended_unix_ms: 11_000,
                status: "done".into(),
                text: "Ever tried. Ever failed.".into(),
                segments: vec![pb::TranscriptSegment {
                    start_ms: 0,
                    end_ms: 2_500,
                    text: "Ever tried. Ever failed.".into(),
                }],
                model: "tiny.en".into(),
                took_ms: 900,
                ..Default::default()
            }],
        };
        let t = transcripts_text(&r, 61_000);
        assert!(t.contains("#3 1m ago (10.0 s, tiny.en, done)"), "{t}");
        assert!(t.contains("[  0.0–  2.5] Ever tried. Ever failed."), "{t}");
        let j = transcripts_json(&r);
        assert_eq!(j["transcripts"][0]["segments"][0]["end_ms"], 2500);
        assert_eq!(j["transcripts"][0]["cloud"], false);
        assert_eq!(
            transcripts_text(&Default::default(), 0),
            "no transcripts yet\n"
        );
    }

    #[test]
    fn status_says_what_records_and_what_transcribes() {
        let rec = cpb::AudioRecorderStatus {
            source: "sim".into(),
            state: "recording".into(),
            detail: "sim: replayed 1 file(s) into 2 segment(s)".into(),
            segments: 2,
            ..Default::default()
        };
        let tr = pb::GetStatusResponse {
            state: "idle".into(),
            detail: "nothing to transcribe".into(),
            model: "tiny.en".into(),
            model_reason: "[audio] model".into(),
            transcripts: 2,
            last_audio_ms: 10_000,
            last_took_ms: 2_800,
            last_rtf: 0.28,
            cloud: "off: audio is transcribed on this device only".into(),
            ..Default::default()
        };
        let s = status_text(None, &rec, &tr, 0);
        assert!(s.starts_with("audio: off (coworkctl audio enable)"), "{s}");
        assert!(s.contains("real-time factor 0.28"), "{s}");
        assert!(s.contains("cloud: off"), "{s}");
        let j = status_json(None, &rec, &tr);
        assert_eq!(j["recording"]["segments"], 2);
        assert_eq!(j["transcription"]["model"], "tiny.en");
    }
}
