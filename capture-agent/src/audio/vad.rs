//! Voice-activity gating: cuts a 16 kHz mono sample stream into speech
//! segments. Pure: frames in, finished segments out.
//!
//! Energy based, with an adaptive noise floor: a 20 ms frame is speech when
//! its level is `threshold_db` above the floor (and above an absolute
//! minimum, so digital silence is never speech). The floor is the quietest
//! frame of the last 5 s (minimum statistics: speech has gaps between
//! words, a hum has none), so a steady hum becomes the floor within 5 s and
//! a voice over it still counts. Before 5 s of history the floor is assumed
//! quiet. A segment opens at the first speech
//! frame (with `pre_roll_ms` of what came before, so a soft first syllable
//! is kept), closes after `silence_ms` without speech (the trailing silence
//! is kept short), and is cut at `max_segment_ms` (Whisper reads 30 s at a
//! time). A segment with less than `min_speech_ms` of speech is dropped (a
//! cough, a door).

use std::collections::VecDeque;

/// Samples per second of everything here.
pub const SAMPLE_RATE: u32 = 16_000;
/// Samples per analysis frame (20 ms).
pub const FRAME: usize = 320;
/// Frame duration in ms.
const FRAME_MS: u64 = 20;
/// Frames the noise floor looks back over (5 s).
const FLOOR_FRAMES: usize = 250;

/// The gate's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct VadSettings {
    /// dB above the noise floor that counts as speech.
    pub threshold_db: f32,
    /// Never speech below this level (dBFS).
    pub min_level_db: f32,
    /// Silence that closes a segment, ms.
    pub silence_ms: u64,
    /// Speech a segment needs to be kept, ms.
    pub min_speech_ms: u64,
    /// Audio kept from before the first speech frame, ms.
    pub pre_roll_ms: u64,
    /// The longest segment, ms (a longer one is cut).
    pub max_segment_ms: u64,
}

impl Default for VadSettings {
    fn default() -> Self {
        Self {
            threshold_db: 12.0,
            min_level_db: -50.0,
            silence_ms: 800,
            min_speech_ms: 300,
            pre_roll_ms: 300,
            max_segment_ms: 30_000,
        }
    }
}

/// A finished speech segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Offset of its first sample in the stream, in samples.
    pub start_sample: u64,
    /// 16 kHz mono samples.
    pub samples: Vec<i16>,
    /// Speech frames in it, ms.
    pub speech_ms: u64,
    /// Its loudest frame, dBFS (rounded).
    pub peak_db: i16,
}

impl Segment {
    /// Duration, ms.
    pub fn duration_ms(&self) -> u64 {
        self.samples.len() as u64 * 1000 / u64::from(SAMPLE_RATE)
    }
}

/// The level of a frame in dBFS (-100 for digital silence).
pub fn level_db(frame: &[i16]) -> f32 {
    if frame.is_empty() {
        return -100.0;
    }
    let sum: f64 = frame.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    let rms = (sum / frame.len() as f64).sqrt() / 32768.0;
    if rms <= 1e-5 {
        -100.0
    } else {
        (20.0 * rms.log10()) as f32
    }
}

/// The gate. Feed it samples with [`Vad::push`]; take segments as they
/// finish; [`Vad::finish`] closes the open one at the end of the stream.
#[derive(Debug)]
pub struct Vad {
    s: VadSettings,
    /// Samples not yet a whole frame.
    partial: Vec<i16>,
    /// Frames seen.
    frames: u64,
    /// The levels of the last [`FLOOR_FRAMES`] frames, dBFS.
    levels: VecDeque<f32>,
    /// The noise floor, dBFS: the quietest of `levels`.
    floor: f32,
    /// Recent frames before any segment (the pre-roll).
    pre: VecDeque<Vec<i16>>,
    open: Option<Open>,
    done: Vec<Segment>,
}

#[derive(Debug)]
struct Open {
    start_sample: u64,
    samples: Vec<i16>,
    speech_frames: u64,
    /// Frames since the last speech frame.
    quiet_frames: u64,
    /// Samples up to and including the last speech frame.
    voiced_len: usize,
    peak_db: f32,
}

impl Vad {
    /// A gate with these settings.
    pub fn new(s: VadSettings) -> Self {
        let quiet = s.min_level_db - s.threshold_db;
        Self {
            levels: std::iter::repeat_n(quiet, FLOOR_FRAMES).collect(),
            floor: quiet,
            s,
            partial: Vec::with_capacity(FRAME),
            frames: 0,
            pre: VecDeque::new(),
            open: None,
            done: Vec::new(),
        }
    }

    /// Is a segment open (speech heard and not yet closed)?
    pub fn in_speech(&self) -> bool {
        self.open.is_some()
    }

    /// The current noise floor, dBFS.
    pub fn floor_db(&self) -> f32 {
        self.floor
    }

    /// Feed samples; returns the segments that finished.
    pub fn push(&mut self, samples: &[i16]) -> Vec<Segment> {
        let mut rest = samples;
        while !rest.is_empty() {
            let take = (FRAME - self.partial.len()).min(rest.len());
            self.partial.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.partial.len() == FRAME {
                let frame = std::mem::replace(&mut self.partial, Vec::with_capacity(FRAME));
                self.frame(frame);
            }
        }
        std::mem::take(&mut self.done)
    }

    /// The stream ended (or recording stops): close the open segment.
    pub fn finish(&mut self) -> Vec<Segment> {
        if !self.partial.is_empty() {
            let mut frame = std::mem::take(&mut self.partial);
            frame.resize(FRAME, 0);
            self.frame(frame);
        }
        self.close();
        std::mem::take(&mut self.done)
    }

    fn frames_of(&self, ms: u64) -> u64 {
        ms.div_ceil(FRAME_MS)
    }

    fn frame(&mut self, frame: Vec<i16>) {
        let db = level_db(&frame);
        let speech = db >= self.s.min_level_db && db >= self.floor + self.s.threshold_db;
        self.levels.pop_front();
        self.levels.push_back(db.max(-90.0));
        self.floor = self.levels.iter().copied().fold(f32::INFINITY, f32::min);
        let start = self.frames * FRAME as u64;
        self.frames += 1;
        let max_frames = self.frames_of(self.s.max_segment_ms).max(1);
        let silence_frames = self.frames_of(self.s.silence_ms);
        match self.open.as_mut() {
            None if speech => {
                let pre: Vec<i16> = self.pre.drain(..).flatten().collect();
                let start_sample = start - pre.len() as u64;
                let mut samples = pre;
                samples.extend_from_slice(&frame);
                self.open = Some(Open {
                    start_sample,
                    voiced_len: samples.len(),
                    samples,
                    speech_frames: 1,
                    quiet_frames: 0,
                    peak_db: db,
                });
            }
            None => {
                self.pre.push_back(frame);
                while self.pre.len() as u64 > self.frames_of(self.s.pre_roll_ms) {
                    self.pre.pop_front();
                }
            }
            Some(open) => {
                open.samples.extend_from_slice(&frame);
                if speech {
                    open.speech_frames += 1;
                    open.quiet_frames = 0;
                    open.voiced_len = open.samples.len();
                    open.peak_db = open.peak_db.max(db);
                } else {
                    open.quiet_frames += 1;
                }
                if open.quiet_frames >= silence_frames
                    || open.samples.len() as u64 >= max_frames * FRAME as u64
                {
                    self.close();
                }
            }
        }
    }

    fn close(&mut self) {
        let Some(mut open) = self.open.take() else {
            return;
        };
        if open.speech_frames * FRAME_MS < self.s.min_speech_ms {
            return;
        }
        // Keep a short tail after the last word (a quarter of the silence
        // that closed it), not the whole silence.
        let tail = (self.frames_of(self.s.silence_ms) / 4) as usize * FRAME;
        open.samples
            .truncate((open.voiced_len + tail).min(open.samples.len()));
        self.done.push(Segment {
            start_sample: open.start_sample,
            speech_ms: open.speech_frames * FRAME_MS,
            peak_db: open.peak_db.round() as i16,
            samples: open.samples,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(ms: u64, amp: f32) -> Vec<i16> {
        let n = (ms * u64::from(SAMPLE_RATE) / 1000) as usize;
        (0..n)
            .map(|i| {
                ((i as f32 * 440.0 * std::f32::consts::TAU / SAMPLE_RATE as f32).sin() * amp) as i16
            })
            .collect()
    }

    fn noise(ms: u64, amp: i16, seed: &mut u32) -> Vec<i16> {
        let n = (ms * u64::from(SAMPLE_RATE) / 1000) as usize;
        (0..n)
            .map(|_| {
                *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (*seed >> 16) as i16 % amp.max(1)
            })
            .collect()
    }

    #[test]
    fn levels() {
        assert_eq!(level_db(&[0; 320]), -100.0);
        let full = tone(20, 32767.0);
        assert!((level_db(&full) + 3.0).abs() < 0.2, "{}", level_db(&full));
    }

    #[test]
    fn two_utterances_make_two_segments_with_pre_roll_and_short_tails() {
        let mut v = Vad::new(VadSettings::default());
        let mut input = vec![0i16; 16_000]; // 1 s silence
        input.extend(tone(1000, 8000.0));
        input.extend(vec![0; 32_000]); // 2 s silence
        input.extend(tone(600, 8000.0));
        input.extend(vec![0; 16_000]);
        let mut segs = v.push(&input);
        segs.extend(v.finish());
        assert_eq!(segs.len(), 2, "{segs:?}");
        // Starts 300 ms before the voice (the pre-roll).
        assert_eq!(segs[0].start_sample, 16_000 - 4_800);
        assert_eq!(segs[0].speech_ms, 1000);
        // 300 ms pre-roll + 1 s voice + a 200 ms tail.
        assert_eq!(segs[0].duration_ms(), 1500);
        assert_eq!(segs[1].start_sample, 16_000 + 16_000 + 32_000 - 4_800);
        assert_eq!(segs[1].peak_db, -15);
    }

    #[test]
    fn short_pauses_stay_in_one_segment_and_clicks_are_dropped() {
        let mut v = Vad::new(VadSettings::default());
        let mut input = vec![0i16; 8000];
        input.extend(tone(500, 8000.0));
        input.extend(vec![0; 6400]); // 400 ms: a pause within a sentence
        input.extend(tone(500, 8000.0));
        input.extend(vec![0; 32_000]);
        input.extend(tone(100, 8000.0)); // a click: under min_speech_ms
        input.extend(vec![0; 32_000]);
        let segs = v.push(&input);
        assert_eq!(segs.len(), 1, "{segs:?}");
        assert_eq!(segs[0].speech_ms, 1000);
        assert!(!v.in_speech());
    }

    #[test]
    fn a_steady_hum_becomes_the_floor_and_a_voice_over_it_is_heard() {
        let mut v = Vad::new(VadSettings::default());
        let mut seed = 7;
        // Noise at about -40 dBFS: after 5 s it is the floor, never a
        // segment.
        v.push(&noise(6000, 600, &mut seed));
        v.finish();
        let hum = noise(3000, 600, &mut seed);
        assert!(v.push(&hum).is_empty());
        assert!(!v.in_speech());
        assert!(
            v.floor_db() > -50.0 && v.floor_db() < -35.0,
            "{}",
            v.floor_db()
        );
        let voice: Vec<i16> = tone(800, 9000.0)
            .iter()
            .zip(noise(800, 600, &mut seed))
            .map(|(a, b)| a.saturating_add(b))
            .collect();
        assert!(v.push(&voice).is_empty());
        assert!(v.in_speech());
        let segs = v.push(&noise(2000, 600, &mut seed));
        assert_eq!(segs.len(), 1);
    }

    #[test]
    fn long_speech_is_cut_at_the_maximum_and_finish_closes_the_open_one() {
        let mut v = Vad::new(VadSettings {
            max_segment_ms: 2000,
            ..Default::default()
        });
        let segs = v.push(&tone(5000, 8000.0));
        assert_eq!(segs.len(), 2, "two full 2 s segments");
        assert!(segs.iter().all(|s| s.duration_ms() == 2000));
        let last = v.finish();
        assert_eq!(last.len(), 1);
        assert_eq!(last[0].start_sample, 64_000);
        assert_eq!(last[0].duration_ms(), 1000);
    }
}
