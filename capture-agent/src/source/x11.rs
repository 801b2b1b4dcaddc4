//! The X11 source: the active window from EWMH (`_NET_ACTIVE_WINDOW`,
//! `WM_CLASS`, `_NET_WM_NAME` or `WM_NAME`), watched through property
//! events checked every 100 ms; idle from the MIT-SCREEN-SAVER extension and
//! sleep from the gap between CLOCK_BOOTTIME and CLOCK_MONOTONIC; keys
//! through the RECORD extension (a context that exists only while the
//! keystroke or clipboard stream is on); the clipboard's text from the
//! CLIPBOARD selection, read only on a copy/cut/paste hotkey.
//!
//! X11 has no notion of a browser URL, so activities from this source carry
//! none.

use super::keymap::{Decoded, KeyDecoder};
use super::{now_ms, SharedWants, Sink, Source, SourceError};
use crate::event::{AwayKind, ClipboardOp, SourceEvent, Wants, WindowInfo};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::record::{self, ConnectionExt as _};
use x11rb::protocol::screensaver::ConnectionExt as _;
use x11rb::protocol::xproto::{
    Atom, AtomEnum, ChangeWindowAttributesAux, ConnectionExt as _, CreateWindowAux, EventMask,
    Window, WindowClass,
};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;

/// How often property events and wants are checked.
const TICK: Duration = Duration::from_millis(100);
/// How often idle is queried.
const IDLE_EVERY: u32 = 10;
/// A jump of BOOTTIME over MONOTONIC this large within one check is a sleep.
const SLEEP_GAP_MS: i64 = 5_000;
/// How long a copy/cut is given to set the selection before it is read.
const COPY_SETTLE: Duration = Duration::from_millis(150);
/// How long a selection owner has to answer.
const SELECTION_TIMEOUT: Duration = Duration::from_millis(500);
/// Largest clipboard text read.
const MAX_CLIPBOARD: u32 = 256 * 1024;

/// Is an X display configured for this process?
pub fn display_configured() -> bool {
    std::env::var_os("DISPLAY").is_some_and(|d| !d.is_empty())
}

#[derive(Debug, Clone, Copy)]
struct Atoms {
    net_active_window: Atom,
    net_wm_name: Atom,
    net_wm_pid: Atom,
    utf8_string: Atom,
    clipboard: Atom,
    targets: Atom,
    password_hint: Atom,
    target_prop: Atom,
}

fn intern(conn: &RustConnection, name: &str) -> Result<Atom, String> {
    conn.intern_atom(false, name.as_bytes())
        .map_err(|e| e.to_string())?
        .reply()
        .map(|r| r.atom)
        .map_err(|e| e.to_string())
}

impl Atoms {
    fn new(conn: &RustConnection) -> Result<Self, String> {
        Ok(Self {
            net_active_window: intern(conn, "_NET_ACTIVE_WINDOW")?,
            net_wm_name: intern(conn, "_NET_WM_NAME")?,
            net_wm_pid: intern(conn, "_NET_WM_PID")?,
            utf8_string: intern(conn, "UTF8_STRING")?,
            clipboard: intern(conn, "CLIPBOARD")?,
            targets: intern(conn, "TARGETS")?,
            password_hint: intern(conn, "x-kde-passwordManagerHint")?,
            target_prop: intern(conn, "COWORK_CLIPBOARD")?,
        })
    }
}

/// The X11 source.
pub struct X11Source {
    idle_threshold_ms: i64,
    wants: Arc<SharedWants>,
    keys: Arc<Mutex<Option<Recorder>>>,
    sink: Option<Sink>,
    /// The last active window reported (0 = none), shared by the window
    /// and key threads so a key is never credited to the previous window.
    active_seen: Arc<AtomicU32>,
}

impl std::fmt::Debug for X11Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("X11Source").finish_non_exhaustive()
    }
}

impl X11Source {
    /// An X11 source calling the person idle after `idle_threshold_ms`
    /// without input.
    pub fn new(idle_threshold_ms: i64) -> Self {
        Self {
            idle_threshold_ms,
            wants: Arc::new(SharedWants::default()),
            keys: Arc::new(Mutex::new(None)),
            sink: None,
            active_seen: Arc::new(AtomicU32::new(0)),
        }
    }

    fn sync_recorder(&mut self, wants: Wants) {
        let Some(sink) = self.sink.clone() else {
            return;
        };
        let Ok(mut slot) = self.keys.lock() else {
            return;
        };
        match (wants.key_hook(), slot.is_some()) {
            (true, false) => {
                match Recorder::start(self.wants.clone(), sink.clone(), self.active_seen.clone()) {
                    Ok(r) => *slot = Some(r),
                    Err(e) => {
                        sink.degraded(format!("X11 key capture unavailable: {e}"));
                    }
                }
            }
            (false, true) => {
                if let Some(r) = slot.take() {
                    r.stop();
                }
            }
            _ => {}
        }
    }
}

impl Source for X11Source {
    fn name(&self) -> &'static str {
        "x11"
    }

    fn start(&mut self, wants: Wants, sink: Sink) -> Result<(), SourceError> {
        let display = std::env::var("DISPLAY").unwrap_or_default();
        let (conn, screen) = x11rb::connect(None)
            .map_err(|e| SourceError(format!("cannot connect to X display {display:?}: {e}")))?;
        let root = conn.setup().roots[screen].root;
        let atoms = Atoms::new(&conn).map_err(|e| SourceError(format!("X11: {e}")))?;
        let has_saver = conn
            .extension_information(x11rb::protocol::screensaver::X11_EXTENSION_NAME)
            .ok()
            .flatten()
            .is_some();
        self.wants.set(wants);
        self.sink = Some(sink.clone());
        let shared = self.wants.clone();
        let idle_threshold = self.idle_threshold_ms;
        let watcher = WindowWatcher {
            conn,
            root,
            atoms,
            has_saver,
            idle_threshold,
            wants: shared,
            sink: sink.clone(),
            active_seen: self.active_seen.clone(),
        };
        std::thread::Builder::new()
            .name("capture-x11".into())
            .spawn(move || watcher.run())
            .map_err(|e| SourceError(format!("cannot start the X11 thread: {e}")))?;
        sink.healthy(format!(
            "X11 display {display}{}",
            if has_saver {
                ""
            } else {
                " (no MIT-SCREEN-SAVER: idle not detected)"
            }
        ));
        self.sync_recorder(wants);
        Ok(())
    }

    fn set_wants(&mut self, wants: Wants) {
        self.wants.set(wants);
        self.sync_recorder(wants);
    }
}

/// CLOCK_BOOTTIME − CLOCK_MONOTONIC in ms: grows by the time spent asleep.
fn suspended_ms() -> i64 {
    fn ms(clock: nix::time::ClockId) -> i64 {
        nix::time::clock_gettime(clock)
            .map(|t| t.tv_sec() * 1000 + t.tv_nsec() / 1_000_000)
            .unwrap_or(0)
    }
    ms(nix::time::ClockId::CLOCK_BOOTTIME) - ms(nix::time::ClockId::CLOCK_MONOTONIC)
}

fn prop(conn: &RustConnection, win: Window, atom: Atom, ty: impl Into<Atom>) -> Option<Vec<u8>> {
    let r = conn
        .get_property(false, win, atom, ty, 0, 4096)
        .ok()?
        .reply()
        .ok()?;
    (r.format != 0 && !r.value.is_empty()).then_some(r.value)
}

/// The window `_NET_ACTIVE_WINDOW` names, if any.
fn active_window(conn: &RustConnection, root: Window, atoms: &Atoms) -> Option<Window> {
    let v = prop(conn, root, atoms.net_active_window, AtomEnum::WINDOW)?;
    let id = u32::from_ne_bytes(v.get(..4)?.try_into().ok()?);
    (id != 0).then_some(id)
}

/// `WM_CLASS` (instance, class) of a window.
fn wm_class(conn: &RustConnection, win: Window) -> (String, String) {
    let class = prop(conn, win, AtomEnum::WM_CLASS.into(), AtomEnum::STRING).unwrap_or_default();
    let mut parts = class
        .split(|b| *b == 0)
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let instance = parts.next().unwrap_or_default();
    let class = parts
        .next()
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| instance.clone());
    (instance, class)
}

/// App, class and title of a window.
fn window_info(conn: &RustConnection, win: Window, atoms: &Atoms) -> WindowInfo {
    let (instance, class) = wm_class(conn, win);
    let title = prop(conn, win, atoms.net_wm_name, AtomEnum::ANY)
        .or_else(|| prop(conn, win, AtomEnum::WM_NAME.into(), AtomEnum::ANY))
        .map(|t| String::from_utf8_lossy(&t).into_owned())
        .unwrap_or_default();
    WindowInfo {
        app: class.clone(),
        app_id: if instance.is_empty() { class } else { instance },
        title,
        url: None,
    }
}

struct WindowWatcher {
    conn: RustConnection,
    root: Window,
    atoms: Atoms,
    has_saver: bool,
    idle_threshold: i64,
    wants: Arc<SharedWants>,
    sink: Sink,
    active_seen: Arc<AtomicU32>,
}

impl WindowWatcher {
    fn select(&self, win: Window, on: bool) {
        let mask = if on {
            EventMask::PROPERTY_CHANGE
        } else {
            EventMask::NO_EVENT
        };
        let _ = self
            .conn
            .change_window_attributes(win, &ChangeWindowAttributesAux::new().event_mask(mask));
        let _ = self.conn.flush();
    }

    fn active(&self) -> Option<Window> {
        active_window(&self.conn, self.root, &self.atoms)
    }

    fn info(&self, win: Window) -> WindowInfo {
        window_info(&self.conn, win, &self.atoms)
    }

    fn run(self) {
        let mut watched: Option<Window> = None;
        let mut was_window = false;
        let mut away: Option<AwayKind> = None;
        let mut suspended = suspended_ms();
        let mut tick = 0u32;
        let mut dirty = true;
        loop {
            let wants = self.wants.get();
            if wants.window != was_window {
                self.select(self.root, wants.window);
                if let Some(w) = watched.take() {
                    self.select(w, false);
                }
                was_window = wants.window;
                dirty = wants.window;
            }
            loop {
                match self.conn.poll_for_event() {
                    Ok(Some(Event::PropertyNotify(e))) => {
                        if e.atom == self.atoms.net_active_window
                            || e.atom == self.atoms.net_wm_name
                            || e.atom == u32::from(AtomEnum::WM_NAME)
                            || e.atom == u32::from(AtomEnum::WM_CLASS)
                        {
                            dirty = true;
                        }
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => {
                        self.sink
                            .degraded(format!("X11 connection lost: {e}; restart capture"));
                        return;
                    }
                }
            }
            if dirty && wants.window {
                dirty = false;
                let active = self.active();
                if active != watched {
                    if let Some(w) = watched {
                        self.select(w, false);
                    }
                    if let Some(w) = active {
                        self.select(w, true);
                    }
                    watched = active;
                }
                self.active_seen
                    .store(active.unwrap_or(0), Ordering::SeqCst);
                let ev = match active {
                    Some(w) => SourceEvent::Window(self.info(w)),
                    None => SourceEvent::NoWindow,
                };
                if !self.sink.event(now_ms(), ev) {
                    return;
                }
            }
            tick += 1;
            if tick.is_multiple_of(IDLE_EVERY) && wants.idle {
                let now = now_ms();
                let s = suspended_ms();
                let slept = s - suspended;
                suspended = s;
                if slept >= SLEEP_GAP_MS {
                    if !self
                        .sink
                        .event(now - slept, SourceEvent::AwayStart(AwayKind::Sleep))
                        || !self.sink.event(now, SourceEvent::AwayEnd)
                    {
                        return;
                    }
                    away = None;
                }
                if self.has_saver {
                    let idle = self
                        .conn
                        .screensaver_query_info(self.root)
                        .ok()
                        .and_then(|c| c.reply().ok())
                        .map(|r| i64::from(r.ms_since_user_input));
                    match (idle, away) {
                        (Some(ms), None) if ms >= self.idle_threshold => {
                            away = Some(AwayKind::Idle);
                            if !self
                                .sink
                                .event(now - ms, SourceEvent::AwayStart(AwayKind::Idle))
                            {
                                return;
                            }
                        }
                        (Some(ms), Some(_)) if ms < self.idle_threshold => {
                            away = None;
                            if !self.sink.event(now - ms, SourceEvent::AwayEnd) {
                                return;
                            }
                        }
                        _ => {}
                    }
                }
            }
            std::thread::sleep(TICK);
        }
    }
}

/// A RECORD context delivering key presses, alive while keystrokes or
/// clipboard are wanted.
struct Recorder {
    ctrl: Arc<RustConnection>,
    context: record::Context,
    stopped: Arc<AtomicBool>,
}

impl Recorder {
    fn start(
        wants: Arc<SharedWants>,
        sink: Sink,
        active_seen: Arc<AtomicU32>,
    ) -> Result<Self, String> {
        let (ctrl, screen) = x11rb::connect(None).map_err(|e| e.to_string())?;
        let root = ctrl.setup().roots[screen].root;
        let atoms = Atoms::new(&ctrl)?;
        let (data, _) = x11rb::connect(None).map_err(|e| e.to_string())?;
        if ctrl
            .extension_information(record::X11_EXTENSION_NAME)
            .map_err(|e| e.to_string())?
            .is_none()
        {
            return Err("the X server has no RECORD extension".into());
        }
        let _ = ctrl
            .record_query_version(1, 13)
            .map_err(|e| e.to_string())?
            .reply();
        let setup = ctrl.setup();
        let (min, max) = (setup.min_keycode, setup.max_keycode);
        let context = ctrl.generate_id().map_err(|e| e.to_string())?;
        let empty = record::Range8 { first: 0, last: 0 };
        let empty_ext = record::ExtRange {
            major: empty,
            minor: record::Range16 { first: 0, last: 0 },
        };
        let range = record::Range {
            core_requests: empty,
            core_replies: empty,
            ext_requests: empty_ext,
            ext_replies: empty_ext,
            delivered_events: empty,
            device_events: record::Range8 {
                first: x11rb::protocol::xproto::KEY_PRESS_EVENT,
                last: x11rb::protocol::xproto::KEY_RELEASE_EVENT,
            },
            errors: empty,
            client_started: false,
            client_died: false,
        };
        ctrl.record_create_context(context, 0, &[record::CS::ALL_CLIENTS.into()], &[range])
            .map_err(|e| e.to_string())?
            .check()
            .map_err(|e| e.to_string())?;
        let ctrl = Arc::new(ctrl);
        let decoder = mapping(&ctrl, min, max)?;
        let clipboard = ClipboardReader::new()?;
        let stopped = Arc::new(AtomicBool::new(false));
        let (c2, s2) = (ctrl.clone(), stopped.clone());
        let focus = FocusCheck {
            root,
            atoms,
            active_seen,
        };
        std::thread::Builder::new()
            .name("capture-x11-keys".into())
            .spawn(move || {
                record_loop(
                    data, context, c2, decoder, clipboard, focus, &wants, &sink, &s2,
                );
            })
            .map_err(|e| e.to_string())?;
        Ok(Self {
            ctrl,
            context,
            stopped,
        })
    }

    fn stop(self) {
        self.stopped.store(true, Ordering::SeqCst);
        let _ = self.ctrl.record_disable_context(self.context);
        let _ = self.ctrl.flush();
        let _ = self.ctrl.sync();
        let _ = self.ctrl.record_free_context(self.context);
        let _ = self.ctrl.flush();
    }
}

fn mapping(conn: &RustConnection, min: u8, max: u8) -> Result<KeyDecoder, String> {
    let r = conn
        .get_keyboard_mapping(min, max - min + 1)
        .map_err(|e| e.to_string())?
        .reply()
        .map_err(|e| e.to_string())?;
    Ok(KeyDecoder::new(min, r.keysyms_per_keycode, r.keysyms))
}

/// Before a key is reported: has focus moved since the window thread last
/// looked (it checks every 100 ms)? If so, report the new window first.
struct FocusCheck {
    root: Window,
    atoms: Atoms,
    active_seen: Arc<AtomicU32>,
}

impl FocusCheck {
    fn sync(&self, conn: &RustConnection, sink: &Sink, at: i64) -> bool {
        let active = active_window(conn, self.root, &self.atoms).unwrap_or(0);
        if self.active_seen.swap(active, Ordering::SeqCst) == active {
            return true;
        }
        let ev = match active {
            0 => SourceEvent::NoWindow,
            w => SourceEvent::Window(window_info(conn, w, &self.atoms)),
        };
        sink.event(at, ev)
    }
}

#[allow(clippy::too_many_arguments)]
fn record_loop(
    data: RustConnection,
    context: record::Context,
    ctrl: Arc<RustConnection>,
    mut decoder: KeyDecoder,
    clipboard: ClipboardReader,
    focus: FocusCheck,
    wants: &SharedWants,
    sink: &Sink,
    stopped: &AtomicBool,
) {
    const FROM_SERVER: u8 = 0;
    let setup = ctrl.setup();
    let (min, max) = (setup.min_keycode, setup.max_keycode);
    let replies = match data.record_enable_context(context) {
        Ok(r) => r,
        Err(e) => {
            sink.degraded(format!("X11 key capture failed: {e}"));
            return;
        }
    };
    let mut last_remap = Instant::now() - Duration::from_secs(60);
    for reply in replies {
        if stopped.load(Ordering::SeqCst) {
            return;
        }
        let Ok(reply) = reply else { return };
        if reply.category != FROM_SERVER || reply.client_swapped {
            continue;
        }
        for ev in reply.data.chunks_exact(32) {
            let (kind, keycode) = (ev[0] & 0x7f, ev[1]);
            let press = kind == x11rb::protocol::xproto::KEY_PRESS_EVENT;
            if !press && kind != x11rb::protocol::xproto::KEY_RELEASE_EVENT {
                continue;
            }
            if !decoder.is_mapped(keycode) && last_remap.elapsed() > Duration::from_millis(50) {
                // xdotool and input methods map spare keycodes on the fly.
                last_remap = Instant::now();
                if let Ok(d) = mapping(&ctrl, min, max) {
                    decoder.take_mapping(d);
                }
            }
            if !press {
                decoder.release(keycode);
                continue;
            }
            let w = wants.get();
            let at = now_ms();
            let decoded = decoder.press(keycode);
            let report = match decoded {
                Decoded::Char(_) | Decoded::Special(_) => w.keys,
                Decoded::Hotkey(_) => w.clipboard,
                Decoded::Nothing => false,
            };
            if report && w.window && !focus.sync(&ctrl, sink, at) {
                return;
            }
            let ok = match decoded {
                Decoded::Char(c) if w.keys => sink.event(at, SourceEvent::Keys(c.to_string())),
                Decoded::Special(k) if w.keys => sink.event(at, SourceEvent::Key(k)),
                Decoded::Hotkey(op) if w.clipboard => {
                    if op != ClipboardOp::Paste {
                        std::thread::sleep(COPY_SETTLE);
                    }
                    let c = clipboard.read();
                    sink.event(
                        at,
                        SourceEvent::Clipboard {
                            op,
                            text: c.text,
                            owner_app: c.owner_app,
                            sensitive: c.sensitive,
                        },
                    )
                }
                _ => true,
            };
            if !ok {
                return;
            }
        }
    }
}

/// Reads the CLIPBOARD selection's text through its own window.
struct ClipboardReader {
    conn: RustConnection,
    window: Window,
    atoms: Atoms,
}

impl ClipboardReader {
    fn new() -> Result<Self, String> {
        let (conn, screen) = x11rb::connect(None).map_err(|e| e.to_string())?;
        let root = conn.setup().roots[screen].root;
        let atoms = Atoms::new(&conn)?;
        let window = conn.generate_id().map_err(|e| e.to_string())?;
        conn.create_window(
            x11rb::COPY_DEPTH_FROM_PARENT,
            window,
            root,
            0,
            0,
            1,
            1,
            0,
            WindowClass::INPUT_OUTPUT,
            0,
            &CreateWindowAux::new(),
        )
        .map_err(|e| e.to_string())?;
        conn.flush().map_err(|e| e.to_string())?;
        Ok(Self {
            conn,
            window,
            atoms,
        })
    }

    /// Ask the CLIPBOARD owner for `target`; the property's format and
    /// bytes, or None when nobody owns it, it refuses, or does not answer.
    fn convert(&self, target: Atom) -> Option<(u8, Vec<u8>)> {
        self.conn
            .convert_selection(
                self.window,
                self.atoms.clipboard,
                target,
                self.atoms.target_prop,
                x11rb::CURRENT_TIME,
            )
            .ok()?;
        self.conn.flush().ok()?;
        let deadline = Instant::now() + SELECTION_TIMEOUT;
        loop {
            match self.conn.poll_for_event().ok()? {
                Some(Event::SelectionNotify(e)) if e.requestor == self.window => {
                    if e.property == x11rb::NONE {
                        return None;
                    }
                    break;
                }
                Some(_) => continue,
                None if Instant::now() >= deadline => return None,
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        let r = self
            .conn
            .get_property(
                true,
                self.window,
                self.atoms.target_prop,
                AtomEnum::ANY,
                0,
                MAX_CLIPBOARD / 4,
            )
            .ok()?
            .reply()
            .ok()?;
        Some((r.format, r.value))
    }

    /// The app owning the clipboard: its window's `WM_CLASS` class, else
    /// the command name of its `_NET_WM_PID`.
    fn owner_app(&self) -> Option<String> {
        let owner = self
            .conn
            .get_selection_owner(self.atoms.clipboard)
            .ok()?
            .reply()
            .ok()?
            .owner;
        if owner == x11rb::NONE {
            return None;
        }
        let (instance, class) = wm_class(&self.conn, owner);
        if !class.is_empty() {
            return Some(class);
        }
        if !instance.is_empty() {
            return Some(instance);
        }
        let pid = prop(&self.conn, owner, self.atoms.net_wm_pid, AtomEnum::CARDINAL)?;
        let pid = u32::from_ne_bytes(pid.get(..4)?.try_into().ok()?);
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .ok()
            .map(|c| c.trim().to_owned())
    }

    /// The clipboard now: its text (None when nobody owns it, it is not
    /// text, or the owner does not answer in time), its owner, and whether
    /// the owner marked it as a password.
    fn read(&self) -> ClipboardContent {
        let owner_app = self.owner_app();
        let sensitive = self
            .convert(self.atoms.targets)
            .filter(|(format, _)| *format == 32)
            .is_some_and(|(_, v)| {
                v.chunks_exact(4).any(|a| {
                    u32::from_ne_bytes([a[0], a[1], a[2], a[3]]) == self.atoms.password_hint
                })
            });
        let text = if sensitive {
            None
        } else {
            self.convert(self.atoms.utf8_string)
                .filter(|(format, _)| *format == 8)
                .map(|(_, v)| String::from_utf8_lossy(&v).into_owned())
        };
        ClipboardContent {
            text,
            owner_app,
            sensitive,
        }
    }
}

/// What [`ClipboardReader::read`] found.
struct ClipboardContent {
    text: Option<String>,
    owner_app: Option<String>,
    sensitive: bool,
}
