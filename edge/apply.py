"""Apply a model to images, folders and videos: predict, render one product (mask, cutout, blur, replace), write
atomically, and keep going past bad inputs."""
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Deque, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from . import compose, effects
from .errors import EdgematteError, InputError
from .io import (DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, VIDEO_SUFFIXES, VideoReader, VideoWriter, atomic_dir,
                 UNREAD_IMAGE_SUFFIXES, read_image, special_file_kind, video_suffix_for_writing, write_image)
from .outputs import check_output_folder, check_replaceable, refuse_inputs
from .progress import Progress, echo

Renderer = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass
class Operation:
    """One product: how to render (image, alpha) and which suffix its image output takes."""

    name: str
    render: Renderer
    keep_jpeg: bool  # write .jpg when the input is a JPEG (lossy in, lossy out); PNG otherwise
    has_alpha: bool = False  # output carries an alpha channel (videos then become PNG frame folders)

    def image_suffix(self, source: Path) -> str:
        """Output suffix for an image input."""
        return ".jpg" if self.keep_jpeg and source.suffix.lower() in (".jpg", ".jpeg") else ".png"


def make_operation(op: str, strength: float = compose.DEFAULT_BLUR_STRENGTH, background: Any = "white",
                   fg_estimate: bool = False, post_process: bool = False, refine: Optional[str] = None,
                   max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> Operation:
    """The Operation for `op` (mask, cutout, blur, replace) with its options bound; `post_process` cleans each
    alpha first (edge.postprocess)."""
    plate = None  # type: Any
    if op == "blur":  # API callers get the CLI's range too (edge.options)
        from .options import STRENGTH_RANGE, check_range

        check_range("strength", strength, *STRENGTH_RANGE)
    if op == "replace":
        if isinstance(background, (str, Path)) and Path(background).is_file():
            plate = read_image(background, max_pixels=max_pixels)  # bounded like every input
        elif isinstance(background, (str, Path)) and Path(background).suffix.lower() in IMAGE_SUFFIXES:
            raise InputError("{}: no such background image".format(background))
        elif isinstance(background, str):
            plate = compose.parse_colour(background)
        else:
            plate = background
    if op == "cutout" and fg_estimate:
        compose.load_pymatting()  # the one-time JIT compile happens here, announced on stderr when due
    builders = {
        "mask": lambda: Operation("mask", lambda img, a: compose.alpha_to_u8(a), keep_jpeg=False),
        "cutout": lambda: Operation("cutout", lambda img, a: compose.cutout(img, a, fg_estimate=fg_estimate),
                                    keep_jpeg=False, has_alpha=True),
        # blur and replace render through edge.effects: the same looks at a fraction of the cost, for video
        "blur": lambda: Operation("blur", lambda img, a: effects.blur(img, a, strength), keep_jpeg=True),
        "replace": lambda: Operation("replace", effects.Replacer(plate), keep_jpeg=True),
    }  # type: Dict[str, Callable[[], Operation]]
    if op not in builders:
        raise EdgematteError("unknown operation '{}' (expected one of {})".format(op, ", ".join(sorted(builders))))
    operation = builders[op]()
    if refine:
        operation.render = _refined(operation.render, refine)
    if post_process:  # outermost: the cleaned alpha is what refinement starts from
        operation.render = _cleaned(operation.render)
    return operation


def _refined(render: Renderer, method: str) -> Renderer:
    """`render` fed the alpha refined by alpha matting (edge.refine); pymatting is loaded now, not per image."""
    from .refine import refiner

    refine = refiner(method)
    return lambda image, alpha: render(image, refine(image, alpha))


def _cleaned(render: Renderer) -> Renderer:
    """`render` fed the post-processed alpha."""
    from .postprocess import post_process

    return lambda image, alpha: render(image, post_process(alpha))


OPERATIONS = ("mask", "cutout", "blur", "replace")


@dataclass
class Summary:
    """What a run did: outputs written, inputs that failed (path, one-line reason), frames skipped."""

    outputs: List[str] = field(default_factory=list)
    failed: List[Tuple[str, str]] = field(default_factory=list)
    broken_frames: int = 0

    @property
    def ok(self) -> bool:
        """True when every input was processed."""
        return not self.failed

    def to_dict(self) -> Dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


@dataclass
class Job:
    """One input file and where its output goes."""

    source: Path
    output: Path
    video: bool


def expand_inputs(inputs: Sequence[Any], outdir: Path, operation: Operation,
                  on_error: Callable[[str, str], None]) -> List[Job]:
    """Jobs for files and folders (recursive; image and video suffixes), keeping sub-folders under `outdir`."""
    jobs = []  # type: List[Job]
    claimed = {}  # type: Dict[Path, Path]
    for item in inputs:
        root = Path(item)
        if root.is_dir():
            files = [p for p in root.rglob("*") if p.is_file()  # nothing hidden, nor in a hidden (staging) folder
                     and not any(part.startswith(".") for part in p.relative_to(root).parts)]
            found = sorted(p for p in files if p.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES)
            unread = [p for p in files if p.suffix.lower() in UNREAD_IMAGE_SUFFIXES]
            if unread:
                echo(_skipped_note(root, unread))
            if not found:
                on_error(str(root), "{}: folder holds no image or video".format(root))
            pairs = [(p, p.parent.relative_to(root)) for p in found]
        elif root.is_file():
            pairs = [(root, Path("."))]
        elif special_file_kind(root) is not None:
            on_error(str(root), "{}: is {}, not a regular file or folder".format(root, special_file_kind(root)))
            continue
        else:
            on_error(str(root), "{}: no such file or folder".format(root))
            continue
        for source, sub in pairs:
            video = source.suffix.lower() in VIDEO_SUFFIXES
            if video:
                name = source.stem if operation.has_alpha else source.stem + video_suffix_for_writing(source.suffix)
            else:
                name = source.stem + operation.image_suffix(source)
            if name in ("", ".", ".."):  # a video named ..mp4 would have the whole output folder as its own
                on_error(str(source), "{}: its name gives no output name; rename it".format(source))
                continue
            output = outdir / sub / name
            if output in claimed:
                on_error(str(source), "{}: its output {} is already the output of {}; skipped".format(
                    source, output, claimed[output]))
                continue
            claimed[output] = source
            jobs.append(Job(source, output, video))
    folders = {job.output: job.source for job in jobs if job.video and operation.has_alpha}
    kept = []  # type: List[Job]
    for job in jobs:  # nothing may land inside a video's frame folder: that folder is replaced whole
        holder = next((folders[p] for p in job.output.parents if p in folders), None)
        if holder is not None:
            on_error(str(job.source), "{}: its output {} lies inside {}, the frame folder of {}; skipped".format(
                job.source, job.output, job.output.parent, holder))
            continue
        kept.append(job)
    return kept


def _skipped_note(folder: Path, skipped: List[Path]) -> str:
    """One line per folder: how many images of formats the kit does not read were left out, and which formats."""
    suffixes = sorted({p.suffix.lower() for p in skipped})
    return "edgematte: note: {}: {} image(s) skipped, a format the kit does not read ({})".format(
        folder, len(skipped), ", ".join(suffixes))


def _print_error(path: str, message: str) -> None:
    """One stderr line per bad input."""
    echo("edgematte: error: {}".format(message))


def _print_warning(path: str, message: str) -> None:
    """One stderr line per recoverable problem (a skipped video frame, a truncated stream)."""
    echo("edgematte: warning: {}".format(message))


MAX_FRAME_WARNINGS = 10  # per video: broken frames named one by one up to this many, then only counted


def process_inputs(predictor: Any, inputs: Sequence[Any], outdir: Any, op: Any = "mask", nireq: int = 0,
                   max_pixels: Optional[int] = DEFAULT_MAX_PIXELS, downscale: bool = False,
                   progress: Optional[bool] = None, on_error: Callable[[str, str], None] = _print_error,
                   on_warning: Callable[[str, str], None] = _print_warning, smooth: bool = True,
                   **op_options: Any) -> Summary:
    """Predict every image/video in `inputs` and write `op`'s product under `outdir`.

    A bad input is reported through `on_error(path, one_line)` and skipped; outputs are written atomically, so a
    failure never leaves a half-written file. Broken video frames are skipped, each reported through
    `on_warning(path, one_line)` (the first MAX_FRAME_WARNINGS per video, then a count). `op` is an operation
    name (options in `op_options`: strength, background, fg_estimate, post_process, refine) or an Operation. Progress:
    None shows a bar on a terminal and periodic lines elsewhere (edge.progress), True forces it, False hides it.
    `smooth` runs video alphas through the temporal filter (edge.temporal).
    """
    operation = op if isinstance(op, Operation) else make_operation(op, max_pixels=max_pixels, **op_options)
    out = Path(outdir)
    summary = Summary()

    def fail(path: str, message: str) -> None:
        summary.failed.append((path, message))
        on_error(path, message)

    check_output_folder(out)  # once, before any work: -o must be a folder
    found = []  # type: List[Tuple[str, str]]
    jobs = expand_inputs(inputs, out, operation, lambda path, message: found.append((path, message)))
    refuse_inputs([(job.output, job.video and operation.has_alpha) for job in jobs], [job.source for job in jobs])
    for path, message in found:  # reported once the run is known not to overwrite an input
        fail(path, message)
    jobs = [job for job in jobs if not (job.video and operation.has_alpha) or _replaceable(job, fail)]
    images = [job for job in jobs if not job.video]
    if images:
        _process_images(predictor, images, operation, nireq, max_pixels, downscale, progress, summary, fail)
    for job in jobs:
        if job.video:
            _process_video(predictor, job, operation, nireq, progress, summary, fail, on_warning, smooth,
                           max_pixels=max_pixels)
    return summary


def _replaceable(job: Job, fail: Callable[[str, str], None]) -> bool:
    """Whether a video's frame folder may be written: new, or an earlier one the kit wrote (edge.outputs)."""
    try:
        check_replaceable(job.output, option="")
    except EdgematteError as exc:
        fail(str(job.source), "{}: {}".format(job.source, exc))
        return False
    return True


def _process_images(predictor: Any, jobs: List[Job], operation: Operation, nireq: int, max_pixels: Optional[int],
                    downscale: bool, progress: Optional[bool], summary: Summary,
                    fail: Callable[[str, str], None]) -> None:
    """Images stream through predict_many; unreadable ones are reported and left out of the stream."""
    pending = deque()  # type: Deque[Tuple[Job, np.ndarray]]
    bar = Progress(len(jobs), operation.name, "images", progress)

    def readable() -> Iterator[np.ndarray]:
        for job in jobs:
            try:
                image = read_image(job.source, max_pixels=max_pixels, downscale=downscale)
            except EdgematteError as exc:
                fail(str(job.source), str(exc))
                bar.update()
                continue
            pending.append((job, image))
            yield image

    try:
        for alpha in predictor.predict_many(readable(), nireq=nireq):
            job, image = pending.popleft()
            try:
                write_image(job.output, operation.render(image, alpha))
                summary.outputs.append(str(job.output))
            except EdgematteError as exc:
                fail(str(job.source), str(exc))
            except OSError as exc:
                fail(str(job.source), "{}: cannot write {} ({})".format(job.source, job.output,
                                                                         exc.strerror or exc))
            bar.update()
    finally:
        bar.close()


def _process_video(predictor: Any, job: Job, operation: Operation, nireq: int, progress: Optional[bool],
                   summary: Summary, fail: Callable[[str, str], None], warn: Callable[[str, str], None],
                   smooth: bool = True, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> None:
    """One video in, one video out (or a PNG frame folder for products with alpha); all or nothing.

    Frames stream through predict_many: only the frames of requests in flight are held, so memory stays flat
    however long the video is. Broken frames are skipped with a warning each; a video with no readable frame fails.
    """
    source = str(job.source)

    def broken(index: int) -> None:
        if reader.broken <= MAX_FRAME_WARNINGS:
            warn(source, "{}: frame {} is unreadable; skipped".format(source, index))

    try:
        reader = VideoReader(job.source, on_broken=broken, max_pixels=max_pixels)
        bar = Progress(reader.info.frame_count or None, "{} {}".format(operation.name, job.source.name), "frames",
                       progress)
        try:  # decode, inference, smoothing and composite overlap (edge.live)
            from .live import render_stream
            from .temporal import AlphaSmoother

            results = render_stream(predictor, reader, operation.render, nireq,
                                    smoother=AlphaSmoother() if smooth else None)
            if operation.has_alpha:
                with atomic_dir(job.output, "frames") as folder:
                    for index, rendered in enumerate(results):
                        write_image(Path(folder) / "{:06d}.png".format(index), rendered)
                        bar.update()
            else:
                size = (reader.info.width, reader.info.height)
                with VideoWriter(job.output, reader.info.fps, size) as writer:
                    for rendered in results:
                        writer.write(rendered)
                        bar.update()
        finally:
            bar.close()
        summary.outputs.append(str(job.output))
        if reader.broken:
            summary.broken_frames += reader.broken
            warn(source, "{}: {} unreadable frame(s) skipped in all; {} frame(s) written to {}".format(
                source, reader.broken, reader.frames, job.output))
        if reader.missing:
            warn(source, "{}: the stream ends after {} frame(s) but its header declares {} (truncated file?)".format(
                source, reader.frames + reader.broken, reader.info.frame_count))
    except EdgematteError as exc:
        fail(source, str(exc) if source in str(exc) else "{}: {}".format(source, exc))
    except OSError as exc:
        fail(source, "{}: cannot write {} ({})".format(source, job.output, exc.strerror or exc))


__all__ = ["OPERATIONS", "Operation", "make_operation", "Summary", "Job", "expand_inputs", "process_inputs"]
