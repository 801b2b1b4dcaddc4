//! Read-only queries of capture's tables (capture-agent owns and migrates
//! them; agents-agent never writes or alters them). The only SQL here.

use super::layer1::Window;
use rusqlite::Connection;

/// The `recent` newest activities, newest first; empty when capture has
/// none, or has not created its tables yet.
pub fn recent_windows(c: &Connection, recent: u32) -> Vec<Window> {
    let Ok(mut s) = c.prepare(
        "SELECT app_name, window_title, url, ended_ms IS NULL FROM capture_activities
         ORDER BY started_ms DESC, id DESC LIMIT ?1",
    ) else {
        return Vec::new();
    };
    let Ok(rows) = s.query_map([recent], |r| {
        Ok(Window {
            app: r.get(0)?,
            title: r.get(1)?,
            url: r.get(2)?,
            open: r.get(3)?,
        })
    }) else {
        return Vec::new();
    };
    rows.filter_map(Result::ok).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_capture_activities_newest_first_and_nothing_without_them() {
        let c = Connection::open_in_memory().unwrap();
        assert!(
            recent_windows(&c, 5).is_empty(),
            "no capture tables: nothing"
        );
        c.execute_batch(
            "CREATE TABLE capture_activities (id INTEGER PRIMARY KEY, app_name TEXT, window_title TEXT,
                url TEXT, started_ms INTEGER, ended_ms INTEGER);
             INSERT INTO capture_activities VALUES (1, 'Code', 'main.rs', NULL, 1, 2);
             INSERT INTO capture_activities VALUES (2, 'Firefox', 'Docs', 'https://d.test', 3, NULL);",
        )
        .unwrap();
        let w = recent_windows(&c, 5);
        assert_eq!(w.len(), 2);
        assert_eq!((w[0].app.as_str(), w[0].open), ("Firefox", true));
        assert_eq!(
            (w[1].title.as_str(), w[1].url.as_deref()),
            ("main.rs", None)
        );
        assert_eq!(recent_windows(&c, 1).len(), 1);
    }
}
