//! The ffmpeg command of a storyboard render: one `filter_complex` that lays visual clips over
//! a black canvas in track order (stills scaled to cover the frame, with `zoompan` for pan/zoom;
//! videos fitted; title cards drawn with `drawtext` on a colour source; crossfades as an alpha
//! fade over the clip beneath), mixes sound clips, ducks them under narration with
//! `sidechaincompress`, and encodes H.264/AAC MP4 with `-progress` on stdout.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use seidra_core::timeline::PanZoom;

/// Output frame and encoder settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutputFormat {
    /// Width, pixels (even).
    pub width: u32,
    /// Height, pixels (even).
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// x264 preset (`veryfast` for renders, `ultrafast` for proxies).
    pub preset: &'static str,
    /// x264 CRF.
    pub crf: u32,
    /// AAC bit rate, kb/s.
    pub audio_kbps: u32,
}

/// What a visual clip shows.
#[derive(Debug, Clone, PartialEq)]
pub enum Picture {
    /// A still image file.
    Still {
        /// File.
        path: PathBuf,
        /// Pan/zoom.
        pan_zoom: Option<PanZoom>,
    },
    /// A video file from `in_point`.
    Video {
        /// File.
        path: PathBuf,
        /// Seconds into the file.
        in_point: f64,
    },
    /// A title card.
    Title {
        /// File holding the text (drawtext reads it, so no escaping is needed).
        text_file: PathBuf,
        /// Font size, pixels.
        font_size: u32,
        /// `#rrggbb`.
        color: String,
        /// `#rrggbb`.
        background: String,
    },
}

/// A clip on the picture, in layer order.
#[derive(Debug, Clone, PartialEq)]
pub struct VisualClip {
    /// Content.
    pub picture: Picture,
    /// Timeline start, seconds.
    pub start: f64,
    /// Seconds.
    pub duration: f64,
    /// Crossfade-in length, seconds (0 = cut).
    pub fade_in: f64,
}

/// A sound on the mix.
#[derive(Debug, Clone, PartialEq)]
pub struct SoundClip {
    /// File (or the video file whose sound this is).
    pub path: PathBuf,
    /// Timeline start, seconds.
    pub start: f64,
    /// Seconds.
    pub duration: f64,
    /// Seconds into the file.
    pub in_point: f64,
    /// Gain.
    pub volume: f64,
    /// Fade-in, seconds.
    pub fade_in: f64,
}

/// Everything a render needs, with files already on local disk.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderPlan {
    /// Output settings.
    pub format: OutputFormat,
    /// Length, seconds.
    pub duration: f64,
    /// Pictures, bottom layer first.
    pub visuals: Vec<VisualClip>,
    /// Music, sound effects and the sound of video clips (ducked under narration).
    pub sounds: Vec<SoundClip>,
    /// Spoken narration.
    pub narration: Vec<SoundClip>,
}

fn secs(v: f64) -> String {
    format!("{v:.3}")
}

/// The ffmpeg arguments (after the program name) that render `plan` to `out`.
pub fn ffmpeg_args(plan: &RenderPlan, out: &Path) -> Vec<OsString> {
    let f = plan.format;
    let (w, h, fps) = (f.width, f.height, f.fps);
    let mut args: Vec<OsString> =
        ["-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-progress", "pipe:1", "-nostats"]
            .map(OsString::from)
            .to_vec();
    let mut graph = String::new();
    let mut input = 0usize;
    let mut add_input = |args: &mut Vec<OsString>, pre: Vec<String>, path: &Path| {
        args.extend(pre.into_iter().map(OsString::from));
        args.push("-i".into());
        args.push(path.as_os_str().to_owned());
        input += 1;
        input - 1
    };
    let _ = write!(graph, "color=c=black:s={w}x{h}:r={fps}:d={},format=yuv420p[base0];", secs(plan.duration));
    for (i, clip) in plan.visuals.iter().enumerate() {
        let d = secs(clip.duration);
        match &clip.picture {
            Picture::Still { path, pan_zoom } => {
                let k = add_input(
                    &mut args,
                    vec!["-loop".into(), "1".into(), "-framerate".into(), fps.to_string(), "-t".into(), d.clone()],
                    path,
                );
                let _ =
                    write!(graph, "[{k}:v]scale={w}:{h}:force_original_aspect_ratio=increase,crop={w}:{h},setsar=1");
                if let Some(pz) = pan_zoom {
                    let frames = ((clip.duration * f64::from(fps)).round() - 1.0).max(1.0);
                    let _ = write!(
                        graph,
                        ",zoompan=z='{:.4}+{:.6}*on':x='(iw-iw/zoom)*{:.4}':y='(ih-ih/zoom)*{:.4}':d=1:s={w}x{h}:fps={fps}",
                        pz.start_zoom,
                        (pz.end_zoom - pz.start_zoom) / frames,
                        pz.x,
                        pz.y
                    );
                }
            }
            Picture::Video { path, in_point } => {
                let k = add_input(&mut args, vec!["-ss".into(), secs(*in_point), "-t".into(), d.clone()], path);
                let _ = write!(
                    graph,
                    "[{k}:v]fps={fps},scale={w}:{h}:force_original_aspect_ratio=decrease,pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,setsar=1"
                );
            }
            Picture::Title { text_file, font_size, color, background } => {
                let _ = write!(
                    graph,
                    "color=c={}:s={w}x{h}:r={fps}:d={d},drawtext=textfile='{}':expansion=none:fontcolor={}:fontsize={font_size}:\
                     x=(w-text_w)/2:y=(h-text_h)/2",
                    background.replace('#', "0x"),
                    filter_path(text_file),
                    color.replace('#', "0x"),
                );
            }
        }
        graph.push_str(",format=yuva420p");
        if clip.fade_in > 0.0 {
            let _ = write!(graph, ",fade=t=in:st=0:d={}:alpha=1", secs(clip.fade_in));
        }
        let _ = write!(
            graph,
            ",trim=duration={d},setpts=PTS-STARTPTS+{}/TB[v{i}];[base{i}][v{i}]overlay=eof_action=pass:format=auto[base{}];",
            secs(clip.start),
            i + 1
        );
    }
    let _ = write!(graph, "[base{}]format=yuv420p[vout];", plan.visuals.len());

    let mut bus = |graph: &mut String, args: &mut Vec<OsString>, clips: &[SoundClip], name: &str| -> bool {
        if clips.is_empty() {
            return false;
        }
        for (j, s) in clips.iter().enumerate() {
            let k = add_input(args, vec!["-ss".into(), secs(s.in_point), "-t".into(), secs(s.duration)], &s.path);
            let delay = (s.start * 1000.0).round() as u64;
            let _ = write!(
                graph,
                "[{k}:a]aformat=sample_fmts=fltp:sample_rates=48000:channel_layouts=stereo,volume={:.3}",
                s.volume
            );
            if s.fade_in > 0.0 {
                let _ = write!(graph, ",afade=t=in:st=0:d={}", secs(s.fade_in));
            }
            let _ = write!(graph, ",adelay={delay}:all=1[{name}{j}];");
        }
        for j in 0..clips.len() {
            let _ = write!(graph, "[{name}{j}]");
        }
        let _ = write!(graph, "amix=inputs={}:duration=longest:normalize=0[{name}];", clips.len());
        true
    };
    let has_music = bus(&mut graph, &mut args, &plan.sounds, "music");
    let has_narration = bus(&mut graph, &mut args, &plan.narration, "narr");
    let total = secs(plan.duration);
    match (has_music, has_narration) {
        (true, true) => {
            // Music drops under the voice (keyed by the narration) and comes back after it.
            let _ = write!(
                graph,
                "[narr]asplit=2[narr_mix][narr_key];\
                 [music][narr_key]sidechaincompress=threshold=0.02:ratio=8:attack=20:release=400[ducked];\
                 [ducked][narr_mix]amix=inputs=2:duration=longest:normalize=0,apad,atrim=0:{total}[aout]"
            );
        }
        (true, false) => {
            let _ = write!(graph, "[music]apad,atrim=0:{total}[aout]");
        }
        (false, true) => {
            let _ = write!(graph, "[narr]apad,atrim=0:{total}[aout]");
        }
        (false, false) => {
            // Always one audio stream, silent if need be: players and editors expect it.
            let _ = write!(graph, "anullsrc=r=48000:cl=stereo,atrim=0:{total}[aout]");
        }
    }
    args.extend(["-filter_complex".into(), graph.into()]);
    for a in [
        "-map",
        "[vout]",
        "-map",
        "[aout]",
        "-c:v",
        "libx264",
        "-preset",
        f.preset,
        "-crf",
        &f.crf.to_string(),
        "-pix_fmt",
        "yuv420p",
        "-r",
        &fps.to_string(),
        "-c:a",
        "aac",
        "-b:a",
        &format!("{}k", f.audio_kbps),
        "-ar",
        "48000",
        "-t",
        &total,
        "-movflags",
        "+faststart",
        "-f",
        "mp4",
    ] {
        args.push(a.into());
    }
    args.push(out.as_os_str().to_owned());
    args
}

/// A path inside a filter argument: quoted with `'`, so only `'`, `\` and `:` need care; the
/// worker only passes paths it made (temporary directories), which contain none of them.
fn filter_path(p: &Path) -> String {
    p.to_string_lossy().replace('\\', "/").replace('\'', "").replace(':', "\\:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_has_one_video_and_one_audio_output() {
        let plan = RenderPlan {
            format: OutputFormat { width: 320, height: 180, fps: 25, preset: "veryfast", crf: 23, audio_kbps: 128 },
            duration: 4.0,
            visuals: vec![VisualClip {
                picture: Picture::Still { path: "/tmp/a.png".into(), pan_zoom: None },
                start: 0.0,
                duration: 4.0,
                fade_in: 0.0,
            }],
            sounds: vec![],
            narration: vec![SoundClip {
                path: "/tmp/n.wav".into(),
                start: 1.0,
                duration: 2.0,
                in_point: 0.0,
                volume: 1.0,
                fade_in: 0.0,
            }],
        };
        let args: Vec<String> =
            ffmpeg_args(&plan, Path::new("/tmp/o.mp4")).iter().map(|a| a.to_string_lossy().into_owned()).collect();
        let graph = &args[args.iter().position(|a| a == "-filter_complex").unwrap_or(0) + 1];
        assert!(graph.contains("[vout]") && graph.contains("[aout]"), "{graph}");
        assert!(graph.contains("adelay=1000:all=1"), "{graph}");
        assert_eq!(args.iter().filter(|a| *a == "-i").count(), 2);
    }
}
