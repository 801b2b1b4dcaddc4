//! `cowork.audio.v1.Audio`: proto ⇄ [`Audio`].

use super::{store, Audio};
use cowork_proto::pb::audio::{self as pb, audio_server};
use tonic::{Request, Response, Status};

/// Transcripts one `ListTranscripts` returns by default, and at most.
pub const DEFAULT_LIMIT: u32 = 50;
/// See [`DEFAULT_LIMIT`].
pub const MAX_LIMIT: u32 = 1000;

/// The service.
#[derive(Debug, Clone)]
pub struct AudioService {
    audio: Audio,
}

impl AudioService {
    /// Serve `audio`.
    pub fn new(audio: Audio) -> Self {
        Self { audio }
    }
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

fn to_pb(t: store::Transcript, dir: &std::path::Path) -> pb::Transcript {
    let audio_kept = t
        .file
        .as_deref()
        .is_some_and(|f| super::is_segment_file(f) && dir.join(f).is_file());
    pb::Transcript {
        segment_id: t.segment_id,
        started_unix_ms: t.started_ms,
        ended_unix_ms: t.ended_ms,
        status: t.status,
        text: t.text,
        segments: t
            .pieces
            .into_iter()
            .map(|p| pb::TranscriptSegment {
                start_ms: p.start_ms,
                end_ms: p.end_ms,
                text: p.text,
            })
            .collect(),
        model: t.model,
        took_ms: t.took_ms.max(0) as u64,
        cloud: t.cloud,
        error: t.error,
        audio_kept,
    }
}

#[tonic::async_trait]
impl audio_server::Audio for AudioService {
    async fn get_status(
        &self,
        _: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::GetStatusResponse>, Status> {
        let s = self.audio.status();
        let (pending, transcripts) = self
            .audio
            .db()
            .read(store::counts)
            .await
            .map_err(internal)?;
        let (model, model_path, model_reason) = match &s.model {
            Some(c) => (
                c.model.name.clone(),
                c.model.path.display().to_string(),
                c.reason.clone(),
            ),
            None => Default::default(),
        };
        Ok(Response::new(pb::GetStatusResponse {
            state: s.state,
            detail: s.detail,
            model,
            model_path,
            model_reason,
            model_loaded: s.loaded,
            pending,
            transcripts,
            last_audio_ms: s.last_audio_ms,
            last_took_ms: s.last_took_ms,
            last_rtf: if s.last_audio_ms > 0 {
                s.last_took_ms as f64 / s.last_audio_ms as f64
            } else {
                0.0
            },
            cloud: "off: audio is transcribed on this device only".into(),
            keep_audio: s.keep_audio,
        }))
    }

    async fn list_transcripts(
        &self,
        r: Request<pb::ListTranscriptsRequest>,
    ) -> Result<Response<pb::ListTranscriptsResponse>, Status> {
        let r = r.into_inner();
        let limit = match r.limit {
            0 => DEFAULT_LIMIT,
            n => n.min(MAX_LIMIT),
        };
        let since = r.since_unix_ms.max(0);
        let rows = self
            .audio
            .db()
            .read(move |c| store::list(c, since, limit))
            .await
            .map_err(internal)?;
        let dir = self.audio.audio_dir().to_path_buf();
        Ok(Response::new(pb::ListTranscriptsResponse {
            transcripts: rows.into_iter().map(|t| to_pb(t, &dir)).collect(),
        }))
    }
}
