#!/usr/bin/env python
"""Build the overlapped-speech development set in ``benchmarks/devset`` from real voices that can
be had offline (Debian's Asterisk prompt packages: seven people in five languages).

Each episode is a conversation put together from single-speaker recordings with exactly known
bounds: turn-taking with pauses, interruptions (the next speaker starts before the current one
stops), stretches where two people talk at once, short backchannels over another speaker, per
speaker room reverberation and level, and a noise bed (pink or brown noise, some background
music). Two styles: ``tv`` (about 8-14 % of speech overlapped, as the paper measures on TV
series) and ``meeting`` (about 20-30 %, as in real meetings). Two parts with disjoint voices:

* ``dev``: Allison Smith (en), July Jiménez (es-CO), Armelle Desjardins (fr), Paola Dal Zot
  (it, ``it_IT_f_Menardi``): for choosing methods and thresholds (``roundtable`` has three of
  them, as ``panel`` has three held-out voices);
* ``heldout``: June Wallack (fr-CA), Carlo Flora (it), the IvrvoiceRU voice (ru): for reporting
  only, never for tuning. These three also speak in the bundled sample's ``realcast``, which is
  not tuned on either.

Layout (what ``audiorole_ray.metrics.score.score_series`` reads):
``benchmarks/devset/<part>/series/<series>/<ep>.ogg`` and ``.../truth/<series>/{<ep>.rttm,cast.json}``.

Needs numpy, scipy, soundfile, PyAV, torch, silero-vad (for the labels) and ``apt-get download``
(packages are fetched into the cache and unpacked with ``dpkg-deb -x``; nothing is installed).
Run from the repository root: ``python scripts/make_overlap_devset.py``. All random choices come from fixed seeds.
"""
from __future__ import annotations

import argparse
import functools
import json
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy.signal import fftconvolve

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_sample_series as mss  # noqa: E402  (signal helpers, package unpacking, encoding)

from audiorole_ray.io.rttm import format_rttm  # noqa: E402  (mss put the repo on sys.path)
from audiorole_ray.masks import runs  # noqa: E402
from audiorole_ray.records import Turn  # noqa: E402

SR = mss.SR
OUT = mss.REPO / "benchmarks" / "devset"
OPUS_16K = mss.Output("ogg", "libopus", 48000, 1, 16000, "ogg")
MUSIC_PACKAGE = "asterisk-moh-opsound-wav"


@dataclass(frozen=True)
class VoiceSource:
    name: str
    package: str
    subdir: str  # under usr/share/asterisk/sounds
    person: str
    language: str
    license: str


VOICES = {
    v.name: v
    for v in (
        VoiceSource("allison", "asterisk-core-sounds-en-wav", "en_US_f_Allison", "Allison Smith", "en-US",
                    "CC-BY-SA-3.0, (c) 2003-2010 Allison Smith"),
        VoiceSource("july", "asterisk-prompt-es-co", "es", "July E. Jiménez (Avatar Ltda.)", "es-CO",
                    "GPL-2, (c) Avatar Ltda."),
        VoiceSource("armelle", "asterisk-prompt-fr-armelle", "fr", "Armelle Desjardins", "fr-FR",
                    "BSD-style, (c) 2006 Michel Gutierrez (voice actor Armelle Desjardins)"),
        VoiceSource("paola", "asterisk-prompt-it-menardi-wav", "it_IT_f_Menardi",
                    "Paola Dal Zot (with Marco Menardi)", "it-IT",
                    "CC-BY-SA-3.0 Italy, (c) 2006-2011 Marco Menardi and Paola Dal Zot, http://www.voip.ammdomus.it"),
        VoiceSource("june", "asterisk-core-sounds-fr-wav", "fr_CA_f_June", "June Wallack", "fr-CA",
                    "CC-BY-SA-3.0, (c) 2006-2008 June Wallack"),
        VoiceSource("carlo", "asterisk-core-sounds-it-wav", "it_IT_m_Carlo", "Carlo Flora", "it-IT",
                    "CC-BY-3.0, (c) 2012 Carlo Flora"),
        VoiceSource("ivrvoice", "asterisk-core-sounds-ru-wav", "ru_RU_f_IvrvoiceRU",
                    "the IvrvoiceRU voice (provided by Maxim Topal)", "ru-RU", "CC-BY-3.0, (c) 2010 Maxim"),
    )
}


@dataclass(frozen=True)
class Style:
    overlap: tuple[float, float]  # accepted share of speech time with 2+ speakers
    p_interrupt: float  # next turn starts before the current one ends
    interrupt_s: tuple[float, float]  # by how much
    p_talk_over: float  # next turn starts in the middle of the current one (both talk on)
    p_backchannel: float  # per turn of 2 s or more
    pause_s: tuple[float, float]
    reverb_rt60: tuple[float, float] | None
    snr_db: tuple[float, float]
    music_db: tuple[float, float] | None  # music bed level against the speech


TV = Style((0.08, 0.14), 0.16, (0.2, 0.8), 0.02, 0.18, (0.15, 1.3), None, (18.0, 24.0), (-22.0, -17.0))
MEETING = Style((0.20, 0.30), 0.32, (0.3, 1.5), 0.08, 0.45, (0.1, 0.9), (0.25, 0.5), (14.0, 20.0), None)


@dataclass(frozen=True)
class SeriesPlan:
    part: str
    name: str
    seed: int
    style: Style
    main: str
    cast: tuple[str, ...]  # main first
    episodes: tuple[float, ...]  # target length of each episode, seconds
    p_main: float = 0.42
    weights: tuple[float, ...] = ()  # relative turn shares of the other speakers


SERIES = [
    SeriesPlan("dev", "talkshow", 101, TV, "allison", ("allison", "july", "armelle", "paola"), (110, 95, 120),
               weights=(3, 2, 1)),
    SeriesPlan("dev", "meeting", 102, MEETING, "paola", ("paola", "allison", "july", "armelle"), (105, 115, 100),
               p_main=0.36, weights=(1, 1, 1)),
    # three people, as in `panel`, from the dev voices: most overlapped stretches hold the main character
    SeriesPlan("dev", "roundtable", 103, MEETING, "july", ("july", "armelle", "allison"), (110, 100, 105),
               p_main=0.42, weights=(1, 1)),
    SeriesPlan("heldout", "panel", 201, MEETING, "june", ("june", "carlo", "ivrvoice"), (110, 100, 105),
               p_main=0.42, weights=(1, 1)),
    SeriesPlan("heldout", "drama", 202, TV, "carlo", ("carlo", "ivrvoice", "june"), (100, 115, 95),
               weights=(2, 1)),
]
IN_TURN_GAP = (0.12, 0.35)
LABEL_PAUSE_S = 0.35  # a pause this long inside a turn is not labelled speech (shorter ones are)
MAX_TURN_S = 9.0
MAIN_LEAD = 1.3  # the main character speaks at least this x the next speaker, in every episode
BACKCHANNEL_S = (0.25, 0.9)
NOT_SPEECH = re.compile(r"/silence/|beep|tone|click|ring|music|/moh/", re.IGNORECASE)  # prompt files that are no speech


@dataclass(frozen=True)
class Labeller:
    """silero VAD's settings for the labels. The defaults made the committed truth; others write
    alternative truths (``--labels-only``) that show how much the label convention alone moves
    a score (RESULTS.md, "How much the label convention decides")."""
    pad_ms: int = 30  # speech_pad_ms: how far a label reaches past silero's speech
    threshold: float = 0.5

    def __post_init__(self):
        if self.pad_ms < 0 or not 0 < self.threshold < 1:
            raise ValueError(f"label padding must be >= 0 ms and threshold in (0, 1), got {self}")

    @classmethod
    def of(cls, cast: dict) -> "Labeller":
        """The convention a written ``cast.json`` was labelled with (none recorded: the default)."""
        return cls(**cast.get("labeller", {}))


# ---------------------------------------------------------------------------------------------
def load_units(voice: VoiceSource, cache: Path) -> tuple[list[np.ndarray], list[np.ndarray], str]:
    """(turn units of 0.9-6 s, backchannel units of 0.25-0.9 s, package version): every prompt of
    the voice, trimmed to speech and levelled."""
    root, version = mss.unpacked_package(voice.package, cache)
    files = sorted(p for p in (root / "usr/share/asterisk/sounds" / voice.subdir).rglob("*")
                   if p.suffix in (".wav", ".gsm") and not NOT_SPEECH.search(str(p.relative_to(root))))
    long, short = [], []
    for p in files:
        x, rate = mss.read_prompt(p)
        if x.ndim > 1:
            x = x.mean(axis=1)
        if len(x) < rate // 10:
            continue
        y = mss.trim_and_level(mss.resample(np.asarray(x, np.float64), rate, SR).astype(np.float32))
        if y is None:
            continue
        d = len(y) / SR
        if 0.9 <= d <= 6.0:
            long.append(y)
        elif BACKCHANNEL_S[0] <= d < BACKCHANNEL_S[1]:
            short.append(y)
    return long, short, version


def music_bed(cache: Path) -> tuple[list[np.ndarray], str]:
    root, version = mss.unpacked_package(MUSIC_PACKAGE, cache)
    tracks = []
    for p in sorted((root / "usr/share/asterisk/moh").glob("*.wav")):
        x, rate = mss.read_prompt(p)
        x = mss.resample(np.asarray(x if x.ndim == 1 else x.mean(1), np.float64), rate, SR)
        tracks.append((x / (np.sqrt(np.mean(x ** 2)) + 1e-9)).astype(np.float32))
    return tracks, version


def room_response(rt60: float, rng: np.random.Generator) -> np.ndarray:
    """A synthetic room: the direct sound plus an exponentially decaying noise tail (the level of
    the tail against the direct sound varies per speaker, as with distance to the microphone)."""
    n = int(rt60 * SR)
    t = np.arange(n) / SR
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    tail[: int(0.002 * SR)] = 0
    h = np.zeros(n)
    h[0] = 1.0
    h += tail * mss.db(rng.uniform(-12, -6)) / np.sqrt(np.sum(tail ** 2) + 1e-12)
    return h


@dataclass
class Placed:
    speaker: str
    start: float
    audio: np.ndarray  # the turn, units with their gaps
    kind: str  # turn | interrupt | talk_over | backchannel

    @property
    def end(self) -> float:
        return self.start + len(self.audio) / SR

    def spans(self, labeller: Labeller = Labeller()) -> list[tuple[float, float]]:
        """The speech of the turn: where silero VAD hears speech in the clean recording, split at
        pauses of ``LABEL_PAUSE_S`` or more, and never where the turn is quiet (more than 35 dB
        under its peak, the units' trimming level ``TRIM_DB``) that long.

        A level threshold alone is not enough: the GSM prompts (July, Armelle) carry a codec noise
        floor within 35 dB of their peak, so trimming leaves their leading and trailing silence in
        the units and their pauses are not quiet enough to cut; on the clean sources silero calls
        7-11 % of July's and 19-27 % of Armelle's level-labelled time no speech (0.2-2 % of the
        other voices'), and in the mixes that time lies at the noise floor."""
        r = mss.short_rms(self.audio)
        loud = r > r.max() * mss.db(mss.TRIM_DB)
        for a, b in runs(~loud):
            if b - a < LABEL_PAUSE_S * SR:
                loud[a:b] = True  # short pauses inside speech are part of it
        speech = loud & vad_speech(self.audio, labeller)
        return [(self.start + a / SR, self.start + b / SR) for a, b in runs(speech)]


@functools.cache
def _silero():
    import torch
    from silero_vad import load_silero_vad

    torch.set_num_threads(1)
    return load_silero_vad()


def vad_speech(x: np.ndarray, labeller: Labeller = Labeller()) -> np.ndarray:
    """Per sample: silero VAD's speech (pauses under ``LABEL_PAUSE_S`` kept inside speech).

    The silero package directly, not the embedded diarizer's VAD (``EmbeddedBackend.speech_regions``):
    the truth must not move when the system it measures is retuned."""
    import torch
    from silero_vad import get_speech_timestamps

    ts = get_speech_timestamps(torch.from_numpy(np.ascontiguousarray(x, np.float32)), _silero(), sampling_rate=SR,
                               min_silence_duration_ms=int(LABEL_PAUSE_S * 1000), speech_pad_ms=labeller.pad_ms,
                               min_speech_duration_ms=100, threshold=labeller.threshold)
    mask = np.zeros(len(x), bool)
    for t in ts:
        mask[t["start"] : t["end"]] = True
    return mask


@dataclass
class Script:
    placed: list[Placed] = field(default_factory=list)

    def turns(self) -> list[Turn]:
        """The scripted turns, first to last sample (what the checks and the noise level use)."""
        return sorted(Turn(round(p.start, 3), round(p.end, 3), p.speaker) for p in self.placed)

    def labels(self, labeller: Labeller = Labeller()) -> list[Turn]:
        """The reference labels: each turn's speech, without its long pauses (``Placed.spans``)."""
        return sorted(Turn(round(a, 3), round(b, 3), p.speaker) for p in self.placed for a, b in p.spans(labeller))


class Deck:
    """Draws a voice's units without replacement, reshuffling when used up."""

    def __init__(self, units: list[np.ndarray], rng: np.random.Generator):
        self.units, self.rng, self.order = units, rng, []

    def draw(self) -> np.ndarray:
        if not self.order:
            self.order = list(self.rng.permutation(len(self.units)))
        return self.units[self.order.pop()]


def make_turn(deck: Deck, rng: np.random.Generator, is_main: bool) -> np.ndarray:
    n = rng.choice([1, 2, 3, 4], p=[0.25, 0.35, 0.25, 0.15] if is_main else [0.45, 0.35, 0.15, 0.05])
    parts: list[np.ndarray] = []
    for _ in range(n):
        u = deck.draw()
        if parts and sum(map(len, parts)) + len(u) > MAX_TURN_S * SR:
            break
        if parts:
            parts.append(np.zeros(int(rng.uniform(*IN_TURN_GAP) * SR), np.float32))
        parts.append(u)
    return np.concatenate(parts)


def script_episode(plan: SeriesPlan, target_s: float, decks, bc_decks, rng) -> Script:
    st, cast = plan.style, plan.cast
    others = np.array(plan.weights or (1,) * (len(cast) - 1), float)
    s = Script()
    busy = {c: 0.0 for c in cast}  # when each speaker's last speech ends: nobody overlaps himself
    prev: Placed | None = None
    t = rng.uniform(0.3, 1.0)
    q = plan.p_main / (1 - plan.p_main)  # P(main | an other spoke last) giving a p_main share of turns
    while t < target_s:
        if prev is not None and prev.speaker != plan.main and rng.random() < q or prev is None:
            spk = plan.main
        else:
            pool = [c for c in cast[1:] if prev is None or c != prev.speaker]
            w = np.array([others[cast[1:].index(c)] for c in pool])
            spk = pool[rng.choice(len(pool), p=w / w.sum())]
        audio = make_turn(decks[spk], rng, spk == plan.main)
        kind, start = "turn", t
        if prev is not None:
            r = rng.random()
            pdur = prev.end - prev.start
            if r < st.p_talk_over and pdur > 3.0:
                kind, start = "talk_over", prev.start + rng.uniform(0.35, 0.7) * pdur
            elif r < st.p_talk_over + st.p_interrupt:
                kind, start = "interrupt", prev.end - min(rng.uniform(*st.interrupt_s), 0.6 * pdur)
            else:
                start = prev.end + rng.uniform(*st.pause_s)
        start = max(start, busy[spk] + 0.15)
        cur = Placed(spk, start, audio, kind)
        s.placed.append(cur)
        busy[spk] = cur.end
        dur = cur.end - cur.start
        if dur >= 2.0 and rng.random() < st.p_backchannel:
            who = [c for c in cast if c != spk and busy[c] < cur.start + 0.3]
            if who:
                b = who[rng.integers(len(who))]
                at = cur.start + rng.uniform(0.3, dur - 0.9)
                bc = Placed(b, max(at, busy[b] + 0.15), bc_decks[b].draw(), "backchannel")
                if bc.end < cur.end:
                    s.placed.append(bc)
                    busy[b] = bc.end
        t = max(prev.end if prev else 0.0, cur.end) + rng.uniform(*st.pause_s)
        prev = cur if prev is None or cur.end >= prev.end else prev
    return s


def speech_stats(turns: list[Turn], duration: float) -> dict:
    step = 0.001
    n = int(np.ceil(duration / step)) + 1
    count = np.zeros(n, np.int16)
    per: dict[str, float] = {}
    for t in turns:
        a, b = int(round(t.start / step)), int(round(t.end / step))
        count[a:b] += 1
        per[t.speaker] = per.get(t.speaker, 0.0) + t.end - t.start
    speech = float((count > 0).sum() * step)
    overlap = float((count > 1).sum() * step)
    return {"speech_s": speech, "overlap_s": overlap, "overlap_share": overlap / max(speech, 1e-9),
            "speech_per_speaker": dict(sorted(per.items(), key=lambda kv: -kv[1]))}


def check(plan: SeriesPlan, s: Script, duration: float) -> str | None:
    st = speech_stats(s.turns(), duration)
    lo, hi = plan.style.overlap
    if not lo <= st["overlap_share"] <= hi:
        return f"overlap {st['overlap_share']:.2f}"
    per = list(st["speech_per_speaker"].items())
    if per[0][0] != plan.main or per[0][1] < MAIN_LEAD * per[1][1] or len(per) < len(plan.cast):
        return "main lead"
    return None


def mix(s: Script, plan: SeriesPlan, duration: float, rooms, gains, music, rng) -> tuple[np.ndarray, dict]:
    n = int(duration * SR)
    speech = np.zeros(n + SR, np.float64)
    for p in s.placed:
        x = p.audio.astype(np.float64) * mss.db(gains[p.speaker] + rng.uniform(-1.5, 1.5))
        if rooms:
            x = fftconvolve(x, rooms[p.speaker])[: len(x) + int(0.3 * SR)]
        a = int(round(p.start * SR))
        speech[a : a + len(x)] += x[: len(speech) - a]
    speech = speech[:n]
    active = np.zeros(n, bool)
    for t in s.turns():
        active[int(t.start * SR) : int(t.end * SR)] = True
    level = np.sqrt(np.mean(speech[active] ** 2))
    st = plan.style
    snr = float(rng.uniform(*st.snr_db))
    kind = "brown" if rng.random() < 0.5 else "pink"
    noise = (mss.brown_noise if kind == "brown" else mss.pink_noise)(n, rng) * level * mss.db(-snr)
    info = {"noise": kind, "snr_db": round(snr, 1)}
    out = speech + noise
    if st.music_db is not None and music:
        track = music[rng.integers(len(music))]
        seg = int(rng.uniform(0.3, 0.6) * n)
        a = int(rng.integers(0, n - seg))
        off = int(rng.integers(0, max(len(track) - seg, 1)))
        m = track[off : off + seg].astype(np.float64)
        fade = np.minimum(1.0, np.minimum(np.arange(len(m)), np.arange(len(m))[::-1]) / SR)  # 1 s fades
        music_db = float(rng.uniform(*st.music_db))
        out[a : a + len(m)] += m * fade * level * mss.db(music_db)
        info["music"] = {"start_s": round(a / SR, 2), "end_s": round((a + len(m)) / SR, 2), "db": round(music_db, 1)}
    peak = np.abs(out).max()
    if peak > 0.95:
        out *= 0.95 / peak
    return out.astype(np.float32), info


def build_series(plan: SeriesPlan, units, music, versions, out_root: Path, labeller: Labeller = Labeller(),
                 labels_only: bool = False) -> dict:
    """Write a series' episodes and truth. ``labels_only``: the truth alone (the mixes are still
    made, so every random draw and hence every episode is the one of a full run)."""
    rng = np.random.default_rng(plan.seed)
    decks = {c: Deck(units[c][0], rng) for c in plan.cast}
    bc_decks = {c: Deck(units[c][1], rng) for c in plan.cast}
    gains = {c: float(rng.uniform(-3, 3)) for c in plan.cast}
    rooms = ({c: room_response(rng.uniform(*plan.style.reverb_rt60), rng) for c in plan.cast}
             if plan.style.reverb_rt60 else {})
    series_dir = out_root / plan.part / "series" / plan.name
    truth_dir = out_root / plan.part / "truth" / plan.name
    if not labels_only:
        series_dir.mkdir(parents=True, exist_ok=True)
    truth_dir.mkdir(parents=True, exist_ok=True)
    episodes = []
    for k, target in enumerate(plan.episodes, 1):
        stem = f"ep{k:02d}"
        for attempt in range(500):
            s = script_episode(plan, target, decks, bc_decks, rng)
            duration = round(max(p.end for p in s.placed) + rng.uniform(0.8, 1.5), 3)
            if check(plan, s, duration) is None:
                break
        else:
            raise RuntimeError(f"{plan.name}/{stem}: no script met the checks")
        audio, info = mix(s, plan, duration, rooms, gains, music, rng)
        path = series_dir / f"{stem}.ogg"
        written = {}
        if not labels_only:
            mss.write_audio(path, mss.Mix(audio, np.zeros_like(audio), info["snr_db"], info["noise"]), OPUS_16K)
            lag = mss.lag_ms(audio, mss.decode_mono16k(path))
            if abs(lag) >= 1.0:
                raise RuntimeError(f"{path}: decodes {lag:.2f} ms off the truth")
            written = {"bytes": path.stat().st_size, "decode_lag_ms": round(lag, 3)}
        turns = s.labels(labeller)
        (truth_dir / f"{stem}.rttm").write_text(format_rttm(stem, turns))
        stats = speech_stats(turns, duration)
        kinds = {k: sum(p.kind == k for p in s.placed) for k in ("turn", "interrupt", "talk_over", "backchannel")}
        episodes.append({
            "episode_id": f"{plan.name}/{stem}", "file": path.name, "duration_s": duration,
            **written, "script_attempts": attempt + 1,
            "speech_s": round(stats["speech_s"], 2), "overlap_s": round(stats["overlap_s"], 2),
            "overlap_share": round(stats["overlap_share"], 3),
            "speech_per_speaker": {k: round(v, 2) for k, v in stats["speech_per_speaker"].items()},
            "turns": kinds, **info,
        })
    cast = {
        "series": plan.name, "part": plan.part, "style": "tv" if plan.style is TV else "meeting",
        "main_character": plan.main, "seed": plan.seed,
        **({} if labeller == Labeller() else {"labeller": asdict(labeller)}),
        "speakers": {c: {"person": VOICES[c].person, "language": VOICES[c].language,
                         "source": f"Debian {VOICES[c].package} {versions[VOICES[c].package]}",
                         "license": VOICES[c].license, "gain_db": round(gains[c], 2)} for c in plan.cast},
        "music": f"Debian {MUSIC_PACKAGE} {versions.get(MUSIC_PACKAGE, '')} (CC-BY-SA-3.0)" if plan.style.music_db else None,
        "episodes": episodes,
    }
    (truth_dir / "cast.json").write_text(json.dumps(cast, indent=1, ensure_ascii=False) + "\n")
    return cast


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "audiorole-ray")
    ap.add_argument("--series", nargs="+", choices=[s.name for s in SERIES])
    ap.add_argument("--label-pad-ms", type=int, default=Labeller.pad_ms,
                    help="how far labels reach past silero's speech (default %(default)s ms)")
    ap.add_argument("--label-threshold", type=float, default=Labeller.threshold,
                    help="silero's speech threshold for the labels (default %(default)s)")
    ap.add_argument("--labels-only", action="store_true",
                    help="write the truth only (for an alternative label convention; give another --out)")
    args = ap.parse_args()
    try:
        labeller = Labeller(args.label_pad_ms, args.label_threshold)
    except ValueError as e:
        ap.error(str(e))
    if (args.labels_only or labeller != Labeller()) and args.out.resolve() == OUT.resolve():
        ap.error("an alternative label convention or --labels-only must not overwrite the committed dev set: give --out")
    plans = [s for s in SERIES if not args.series or s.name in args.series]
    # one --out holds one label convention: a re-run with other settings (say for some series
    # only) would otherwise leave a truth of mixed conventions behind
    if args.labels_only or labeller != Labeller():
        for cast_path in sorted(args.out.glob("*/truth/*/cast.json")):
            found = Labeller.of(json.loads(cast_path.read_text()))
            if found != labeller:
                ap.error(f"{cast_path} was labelled with {found}, not {labeller}: give another --out")
    needed = sorted({c for p in plans for c in p.cast})
    units, versions = {}, {}
    for name in needed:
        long, short, versions[VOICES[name].package] = load_units(VOICES[name], args.cache)
        units[name] = (long, short)
        print(f"{name:<9} {len(long):4d} turn units, {len(short):4d} backchannel units")
    music, versions[MUSIC_PACKAGE] = music_bed(args.cache)
    for plan in plans:
        cast = build_series(plan, units, music, versions, args.out, labeller, args.labels_only)
        for e in cast["episodes"]:
            per = ", ".join(f"{k} {v:.0f}" for k, v in e["speech_per_speaker"].items())
            print(f"{plan.part}/{e['episode_id']:<14} {e['duration_s']:6.1f} s {e.get('bytes', 0) / 1e3:5.0f} kB "
                  f"overlap {e['overlap_share']:.0%} bc {e['turns']['backchannel']:2d} "
                  f"int {e['turns']['interrupt']:2d} over {e['turns']['talk_over']} | {per}")
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"{args.out}: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
