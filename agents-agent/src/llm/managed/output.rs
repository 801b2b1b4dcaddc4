//! What a starting `llama-server` says: the line that means it is ready,
//! the lines that mean it failed, and the last lines kept for the error a
//! person sees. Pure: lines in, verdicts out.

use std::collections::VecDeque;

/// Lines of output kept for an error message.
pub const TAIL_LINES: usize = 20;

/// What one line of output means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Said {
    /// The server accepts requests.
    Ready,
    /// The server cannot start (the reason as it said it).
    Failed(String),
    /// Anything else.
    Other,
}

/// Read one line of a starting server's output. Today's llama-server
/// listens before it loads the model (its `/health` answers 503 until
/// then) and says "main: model loaded" when it can answer; older builds
/// said "server is listening on ... - starting the main loop" after
/// loading. "listening on" alone is not ready.
pub fn read_line(line: &str) -> Said {
    let l = line.to_ascii_lowercase();
    let l = l.trim_end();
    if l.ends_with("main: model loaded") || l.ends_with("starting the main loop") {
        return Said::Ready;
    }
    const FAILED: &[&str] = &[
        "failed to load model",
        "error loading model",
        "couldn't bind http server socket",
        "couldn't start http listener",
        "exiting due to http server error",
        "exiting due to model loading error",
        "error: invalid argument",
        "unknown argument",
    ];
    if FAILED.iter().any(|f| l.contains(f)) {
        return Said::Failed(line.trim().to_owned());
    }
    Said::Other
}

/// The last [`TAIL_LINES`] lines a server wrote, for its error message.
#[derive(Debug, Clone, Default)]
pub struct Tail(VecDeque<String>);

impl Tail {
    /// Keep `line` (the oldest goes when full; a long line is cut to 500
    /// characters).
    pub fn push(&mut self, line: &str) {
        if self.0.len() == TAIL_LINES {
            self.0.pop_front();
        }
        let line = match line.char_indices().nth(500) {
            Some((i, _)) => &line[..i],
            None => line,
        };
        self.0.push_back(line.trim_end().to_owned());
    }

    /// The kept lines, oldest first, one per line.
    pub fn text(&self) -> String {
        self.0.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_and_failure_lines_of_real_servers() {
        // As llama-server prints them.
        assert_eq!(
            read_line(
                "main: server is listening on http://127.0.0.1:41000 - starting the main loop"
            ),
            Said::Ready
        );
        assert_eq!(read_line("srv          main: model loaded\n"), Said::Ready);
        assert_eq!(read_line("main: model loaded"), Said::Ready);
        // Printed before the model loads: not ready yet.
        assert_eq!(
            read_line("srv  main: HTTP server listening, hostname: 127.0.0.1, port: 8080"),
            Said::Other
        );
        assert_eq!(
            read_line("main: listening on http://127.0.0.1:41000"),
            Said::Other
        );
        assert!(matches!(
            read_line("srv          main: exiting due to model loading error"),
            Said::Failed(_)
        ));
        assert!(matches!(
            read_line("llama_model_load: error loading model: tensor 'x' data is not within the file bounds"),
            Said::Failed(_)
        ));
        assert!(matches!(
            read_line("common_init_from_params: failed to load model '/m/x.gguf'"),
            Said::Failed(_)
        ));
        assert!(matches!(
            read_line("couldn't bind HTTP server socket, hostname: 127.0.0.1, port: 41000"),
            Said::Failed(_)
        ));
        assert_eq!(
            read_line("llama_model_loader: - kv 0: general.architecture str = gemma3"),
            Said::Other
        );
    }

    #[test]
    fn the_tail_keeps_the_last_lines_and_cuts_long_ones() {
        let mut t = Tail::default();
        for i in 0..30 {
            t.push(&format!("line {i}\n"));
        }
        let text = t.text();
        assert!(
            text.starts_with("line 10\n") && text.ends_with("line 29"),
            "{text}"
        );
        let mut t = Tail::default();
        t.push(&"é".repeat(600));
        assert_eq!(t.text().chars().count(), 500);
    }
}
