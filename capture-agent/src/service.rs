//! `cowork.capture.v1.Capture`: a thin adapter from the proto to the engine
//! and the store.

use crate::engine::{Engine, Live};
use crate::event::Stream;
use crate::store::{self, RecentQuery};
use cowork_proto::pb::capture::{
    capture_server, ActivityRecord, AudioRecorderStatus, GetActiveWindowRequest,
    GetActiveWindowResponse, GetStatusRequest, GetStatusResponse, ListRecentRequest,
    ListRecentResponse, SetStreamEnabledRequest, SetStreamEnabledResponse, StreamStatus,
};
use tonic::{Request, Response, Status};

/// Records `ListRecent` returns when no limit is given.
pub const DEFAULT_LIMIT: u32 = 50;
/// Most records one `ListRecent` returns.
pub const MAX_LIMIT: u32 = 10_000;

/// The Capture service.
#[derive(Debug, Clone)]
pub struct CaptureService {
    engine: Engine,
}

impl CaptureService {
    /// Serve `engine`.
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }
}

fn stream_status(live: &Live, s: Stream, now_sec: i64) -> StreamStatus {
    let i = Stream::ALL.iter().position(|x| *x == s).unwrap_or(0);
    let st = &live.stats[i];
    StreamStatus {
        name: s.name().to_owned(),
        enabled: live.streams.is_some_and(|set| set.get(s)),
        source: if s == Stream::Audio {
            live.audio.source.clone()
        } else {
            live.source.clone()
        },
        events_last_minute: st.rate.count(now_sec),
        last_event_unix_ms: st.last_event_ms,
        events_total: st.total,
    }
}

fn audio_status(live: &Live) -> AudioRecorderStatus {
    let on = live.streams.is_some_and(|set| set.get(Stream::Audio));
    let a = &live.audio;
    let (state, detail) = match (&a.health, on) {
        (_, false) => ("off", "the audio stream is off".to_owned()),
        (Some(Err(r)), true) => ("degraded", r.clone()),
        (Some(Ok(d)), true) => ("recording", d.clone()),
        (None, true) => ("recording", "starting".to_owned()),
    };
    AudioRecorderStatus {
        source: a.source.clone(),
        state: state.to_owned(),
        detail,
        segments: a.segments,
        last_segment_unix_ms: a.last_segment_ms,
        dropped_blocks: a.dropped_blocks,
        folder: a.dir.clone(),
    }
}

fn engine_status(e: crate::engine::EngineError) -> Status {
    Status::unavailable(format!("capture engine: {e}"))
}

fn now_sec() -> i64 {
    crate::source::now_ms().div_euclid(1000)
}

#[tonic::async_trait]
impl capture_server::Capture for CaptureService {
    async fn get_status(
        &self,
        _: Request<GetStatusRequest>,
    ) -> Result<Response<GetStatusResponse>, Status> {
        let live = self.engine.live();
        let now = now_sec();
        let (state, detail) = match (&live.store_error, &live.source_health) {
            (Some(e), _) => ("degraded", format!("cannot write cowork.db: {e}")),
            (None, Some(Err(r))) => ("degraded", r.clone()),
            (None, Some(Ok(d))) => ("ok", d.clone()),
            (None, None) => ("ok", "starting".to_owned()),
        };
        Ok(Response::new(GetStatusResponse {
            pid: std::process::id(),
            streams: Stream::ALL
                .iter()
                .map(|s| stream_status(&live, *s, now))
                .collect(),
            database_path: self.engine.db_path().display().to_string(),
            source: live.source.clone(),
            source_state: state.to_owned(),
            source_detail: detail,
            rows_written: live.rows_written,
            away: live.away.map(|a| a.name().to_owned()).unwrap_or_default(),
            audio: Some(audio_status(&live)),
        }))
    }

    async fn set_stream_enabled(
        &self,
        req: Request<SetStreamEnabledRequest>,
    ) -> Result<Response<SetStreamEnabledResponse>, Status> {
        let req = req.into_inner();
        let stream: Stream = req
            .stream
            .parse()
            .map_err(|e: crate::event::UnknownStream| Status::invalid_argument(e.to_string()))?;
        let engine = self.engine.clone();
        let on = req.enabled;
        tokio::task::spawn_blocking(move || engine.set_stream(stream, on))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(engine_status)?
            .map_err(Status::internal)?;
        let live = self.engine.live();
        Ok(Response::new(SetStreamEnabledResponse {
            stream: Some(stream_status(&live, stream, now_sec())),
        }))
    }

    async fn list_recent(
        &self,
        req: Request<ListRecentRequest>,
    ) -> Result<Response<ListRecentResponse>, Status> {
        let req = req.into_inner();
        let streams = req
            .streams
            .iter()
            .map(|s| s.parse::<Stream>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let opt = |v: i64| (v != 0).then_some(v);
        let (from, to) = (opt(req.from_unix_ms), opt(req.to_unix_ms));
        if let (Some(f), Some(t)) = (from, to) {
            if f >= t {
                return Err(Status::invalid_argument(format!(
                    "from_unix_ms ({f}) must be before to_unix_ms ({t})"
                )));
            }
        }
        let limit = match req.limit {
            0 => DEFAULT_LIMIT,
            n if n > MAX_LIMIT => {
                return Err(Status::invalid_argument(format!(
                    "limit {n} is over the maximum of {MAX_LIMIT}"
                )))
            }
            n => n,
        };
        let q = RecentQuery {
            from_ms: from,
            to_ms: to,
            limit: limit as usize,
            streams,
        };
        let engine = self.engine.clone();
        let items = tokio::task::spawn_blocking(move || {
            // Commit what the engine holds, so the answer includes it.
            engine
                .flush()
                .map_err(engine_status)?
                .map_err(Status::unavailable)?;
            let conn = store::open_reader(engine.db_path())
                .map_err(|e| Status::unavailable(e.to_string()))?;
            store::recent(&conn, &q)
                .map_err(|e| Status::internal(format!("cannot read cowork.db: {e}")))
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))??;
        Ok(Response::new(ListRecentResponse {
            records: items
                .into_iter()
                .map(|i| ActivityRecord {
                    stream: i.stream,
                    kind: i.kind,
                    id: i.id,
                    started_unix_ms: i.started_ms,
                    ended_unix_ms: i.ended_ms,
                    app: i.app,
                    app_id: i.app_id,
                    title: i.title,
                    url: i.url,
                    text: i.text,
                    detail: i.detail,
                })
                .collect(),
        }))
    }

    async fn get_active_window(
        &self,
        _: Request<GetActiveWindowRequest>,
    ) -> Result<Response<GetActiveWindowResponse>, Status> {
        let live = self.engine.live();
        let away = live.away.map(|a| a.name().to_owned()).unwrap_or_default();
        let streams = live.streams.unwrap_or_else(crate::event::StreamSet::none);
        // With every stream off nothing is read, so nothing is known; with
        // the window stream off, titles and URLs are not shown either.
        let active = live.active.filter(|_| streams.wants().window);
        let show_title = streams.get(Stream::Window);
        Ok(Response::new(match active {
            Some(w) => GetActiveWindowResponse {
                known: true,
                app: w.info.app,
                app_id: w.info.app_id,
                title: if w.denied || !show_title {
                    String::new()
                } else {
                    w.info.title
                },
                url: if w.denied || !show_title {
                    String::new()
                } else {
                    w.info.url.unwrap_or_default()
                },
                since_unix_ms: w.since_ms,
                denylisted: w.denied,
                away,
            },
            None => GetActiveWindowResponse {
                away,
                ..Default::default()
            },
        }))
    }
}
