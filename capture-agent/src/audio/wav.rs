//! WAV files: reading any PCM/float WAV as 16 kHz mono (the sim source,
//! tests), converting sample streams to 16 kHz mono (the microphone), and
//! writing a segment so that it appears whole or not at all.

use super::vad::SAMPLE_RATE;
use std::path::{Path, PathBuf};

/// Errors reading or writing audio files.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    /// Not a WAV file hound can read, or a broken one.
    #[error("{path}: not a readable WAV file: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What hound said.
        source: hound::Error,
    },
    /// Writing the segment failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Average interleaved channels into one.
pub fn downmix(interleaved: &[f32], channels: usize) -> Vec<f32> {
    if channels <= 1 {
        return interleaved.to_vec();
    }
    interleaved
        .chunks(channels)
        .map(|c| c.iter().sum::<f32>() / c.len() as f32)
        .collect()
}

/// A streaming linear-interpolation resampler to 16 kHz (speech needs no
/// more: Whisper itself reads 16 kHz).
#[derive(Debug, Clone)]
pub struct Resampler {
    from: u32,
    /// Position of the next output sample, in input samples since `last`.
    pos: f64,
    last: f32,
}

impl Resampler {
    /// From `from` Hz.
    pub fn new(from: u32) -> Self {
        Self {
            from: from.max(1),
            // The first output sample is the first input sample.
            pos: 1.0,
            last: 0.0,
        }
    }

    /// Convert a block of mono samples in [-1, 1] to 16 kHz i16.
    pub fn push(&mut self, input: &[f32], out: &mut Vec<i16>) {
        if self.from == SAMPLE_RATE {
            out.extend(input.iter().map(|&x| to_i16(x)));
            return;
        }
        let step = f64::from(self.from) / f64::from(SAMPLE_RATE);
        // Sample i of the block is at index i + 1 counting `last` as 0.
        while self.pos < input.len() as f64 {
            let i = self.pos.floor() as usize;
            let frac = (self.pos - i as f64) as f32;
            let a = if i == 0 { self.last } else { input[i - 1] };
            let b = input[i];
            out.push(to_i16(a + (b - a) * frac));
            self.pos += step;
        }
        self.pos -= input.len() as f64;
        if let Some(&l) = input.last() {
            self.last = l;
        }
    }
}

/// A float sample in [-1, 1] as i16 (clipped).
pub fn to_i16(x: f32) -> i16 {
    (x.clamp(-1.0, 1.0) * 32767.0).round() as i16
}

/// Read a whole WAV file (PCM 8/16/24/32-bit or float, any rate, any
/// channels) as 16 kHz mono.
pub fn read_16k_mono(path: &Path) -> Result<Vec<i16>, WavError> {
    let err = |source| WavError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut r = hound::WavReader::open(path).map_err(err)?;
    let spec = r.spec();
    let floats: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => r.samples::<f32>().collect::<Result<_, _>>().map_err(err)?,
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
            r.samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect::<Result<_, _>>()
                .map_err(err)?
        }
    };
    let mono = downmix(&floats, usize::from(spec.channels));
    let mut out = Vec::with_capacity(mono.len() * 16_000 / spec.sample_rate.max(1) as usize + 1);
    Resampler::new(spec.sample_rate).push(&mono, &mut out);
    Ok(out)
}

/// Write 16 kHz mono samples to `path` whole or not at all: into a
/// `.tmp` beside it, synced, then renamed (a reader never sees half a
/// file; a crash leaves only a `seg-….tmp`, which the next start removes).
pub fn write_atomic(path: &Path, samples: &[i16]) -> Result<(), WavError> {
    let werr = |source| WavError::Write {
        path: path.to_path_buf(),
        source,
    };
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    // A segment is at most 30 s (960 KB): encoded in memory, written once.
    let mut bytes = Vec::with_capacity(44 + samples.len() * 2);
    {
        let mut w = hound::WavWriter::new(std::io::Cursor::new(&mut bytes), spec)
            .map_err(|e| werr(std::io::Error::other(e.to_string())))?;
        for &s in samples {
            w.write_sample(s)
                .map_err(|e| werr(std::io::Error::other(e.to_string())))?;
        }
        w.finalize()
            .map_err(|e| werr(std::io::Error::other(e.to_string())))?;
    }
    // Private (0600): a recording is the person's voice.
    cowork_proto::files::write_atomically(path, &bytes, 0o600).map_err(werr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resampling_keeps_duration_and_shape() {
        // 1 s of a 200 Hz sine at 48 kHz → 16 000 samples at 16 kHz, in
        // blocks of odd sizes (the microphone's).
        let sine: Vec<f32> = (0..48_000)
            .map(|i| (i as f32 * 200.0 * std::f32::consts::TAU / 48_000.0).sin() * 0.5)
            .collect();
        let mut r = Resampler::new(48_000);
        let mut out = Vec::new();
        for block in sine.chunks(441) {
            r.push(block, &mut out);
        }
        assert!((out.len() as i64 - 16_000).abs() <= 1, "{}", out.len());
        // The same sine, sampled at 16 kHz.
        for (i, &s) in out.iter().enumerate().skip(10).step_by(97) {
            let want = (i as f32 * 200.0 * std::f32::consts::TAU / 16_000.0).sin() * 0.5 * 32767.0;
            assert!((f32::from(s) - want).abs() < 400.0, "{i}: {s} vs {want}");
        }
        let mut same = Vec::new();
        Resampler::new(16_000).push(&[0.5, -1.5], &mut same);
        assert_eq!(same, vec![16384, -32767]);
    }

    #[test]
    fn downmix_averages_channels() {
        assert_eq!(downmix(&[1.0, 0.0, 0.5, 0.5], 2), vec![0.5, 0.5]);
    }

    #[test]
    fn writes_whole_files_and_reads_any_wav_back_at_16k_mono() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("seg.wav");
        let samples: Vec<i16> = (0..1600).map(|i| (i * 7 % 2000) as i16).collect();
        write_atomic(&p, &samples).unwrap();
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("seg.wav")]);
        assert_eq!(read_16k_mono(&p).unwrap(), samples);
        // A stereo 8 kHz float file comes back as 16 kHz mono.
        let q = dir.path().join("st.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 8000,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let mut w = hound::WavWriter::create(&q, spec).unwrap();
        for _ in 0..8000 {
            w.write_sample(0.25f32).unwrap();
            w.write_sample(0.75f32).unwrap();
        }
        w.finalize().unwrap();
        let m = read_16k_mono(&q).unwrap();
        // (The stream's last input sample waits for a next one.)
        assert!((m.len() as i64 - 16_000).abs() <= 2, "{}", m.len());
        assert!(m[100..].iter().all(|&s| (s - 16384).abs() <= 1));
        let bad = dir.path().join("bad.wav");
        std::fs::write(&bad, b"RIFF\x00\x00not a wav").unwrap();
        let e = read_16k_mono(&bad).unwrap_err().to_string();
        assert!(e.contains("bad.wav: not a readable WAV file"), "{e}");
    }
}
