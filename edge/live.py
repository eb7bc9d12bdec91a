"""The overlapped video pipeline: decode in a thread, several infer requests in flight, temporal smoothing in order,
composite in a small thread pool, encode by the consumer; per-stage latency and end-to-end fps measured on the way."""
from __future__ import annotations

import queue
import statistics
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Deque, Dict, Iterable, Iterator, List, Optional, Tuple

import numpy as np

STAGES = ("decode", "preprocess", "infer", "postprocess", "smooth", "composite", "encode")
_END = object()


class StageClock:
    """Per-stage durations (seconds) and the wall time of a run; `line()` says fps and the median ms of each."""

    def __init__(self) -> None:
        self.samples = {stage: [] for stage in STAGES}  # type: Dict[str, List[float]]
        self.frames = 0
        self.started = time.perf_counter()
        self.ended = 0.0
        self._lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        """Record one duration of `stage` (thread-safe)."""
        with self._lock:
            self.samples[stage].append(seconds)

    def fps(self) -> float:
        """Frames per second over the whole run."""
        wall = (self.ended or time.perf_counter()) - self.started
        return self.frames / wall if wall > 0 and self.frames else 0.0

    def medians_ms(self) -> Dict[str, float]:
        """Median milliseconds of every stage that ran."""
        return {stage: 1000.0 * statistics.median(values) for stage, values in self.samples.items() if values}

    def line(self) -> str:
        """One line: frames, fps, and each stage's median latency."""
        stages = ", ".join("{} {:.1f}".format(stage, ms) for stage, ms in self.medians_ms().items())
        return "{} frame(s), {:.1f} fps end to end; median ms per frame: {}".format(self.frames, self.fps(), stages)


class _Inference:
    """Start/collect OpenVINO inferences on a round-robin pool of requests (oldest first, order kept), with the
    predictor's own preprocessing and postprocessing; predictors without a compiled model run synchronously."""

    def __init__(self, predictor: Any, nireq: int) -> None:
        from .foreign import ForeignPredictor
        from .runtime import OpenVINOPredictor, from_network_output, to_network_input

        self.predictor = predictor
        if isinstance(predictor, OpenVINOPredictor):
            compiled, self.input, self.output = predictor.compiled, 0, 0
            card = predictor.card
            self.prepare = lambda image: to_network_input(image, card)  # type: Callable[[np.ndarray], Any]
            self.finish = lambda raw, size: from_network_output(raw, card, size)  # type: Callable[..., np.ndarray]
        elif isinstance(predictor, ForeignPredictor):
            compiled, self.input, self.output = predictor._compiled, predictor._input_name, predictor._output_index
            self.prepare, self.finish = predictor.prepare, predictor.finish
        else:
            compiled = None
            self.prepare = lambda image: image
            self.finish = lambda raw, size: raw
        self.asynchronous = compiled is not None
        count = int(nireq) if nireq and int(nireq) > 0 else 2
        if self.asynchronous:
            self.free = deque(compiled.create_infer_request() for _ in range(count))  # type: Deque[Any]
        self.depth = count if self.asynchronous else 1

    def start(self, prepared: Any) -> Any:
        """Start one inference; a handle for collect()."""
        if not self.asynchronous:
            return self.predictor.predict(prepared)
        request = self.free.popleft()
        request.start_async({self.input: prepared})
        return request

    def collect(self, handle: Any, size: Tuple[int, int]) -> Tuple[Any, bool]:
        """Wait for an inference; (raw output, True) or, for synchronous predictors, (alpha, False)."""
        if not self.asynchronous:
            return handle, False
        handle.wait()
        return handle.get_output_tensor(self.output).data, True

    def release(self, handle: Any) -> None:
        """Give a finished request back to the pool."""
        if self.asynchronous:
            self.free.append(handle)


def _decode_thread(frames: Iterable[np.ndarray], out: "queue.Queue[Any]", clock: StageClock,
                   stop: threading.Event) -> threading.Thread:
    """Pull frames in a thread into `out` (bounded); an exception is handed over and re-raised by the consumer."""

    def run() -> None:
        iterator = iter(frames)
        try:
            while not stop.is_set():
                began = time.perf_counter()
                try:
                    frame = next(iterator)
                except StopIteration:
                    break
                clock.add("decode", time.perf_counter() - began)
                while not stop.is_set():
                    try:
                        out.put(frame, timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer's thread
            out.put(_Failure(exc))
            return
        finally:
            close = getattr(iterator, "close", None)
            if close is not None and stop.is_set():
                try:
                    close()
                except Exception:  # noqa: BLE001 - a generator closed from its own thread
                    pass
        out.put(_END)

    thread = threading.Thread(target=run, name="edgematte-decode", daemon=True)
    thread.start()
    return thread


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def render_stream(predictor: Any, frames: Iterable[np.ndarray], render: Callable[[np.ndarray, np.ndarray], Any],
                  nireq: int = 0, smoother: Optional[Callable[[np.ndarray, np.ndarray], np.ndarray]] = None,
                  clock: Optional[StageClock] = None, workers: int = 2,
                  stop: Optional[threading.Event] = None) -> Iterator[Any]:
    """Rendered frames in input order, from `frames` through the model, `smoother` and `render`, overlapped.

    Decoding runs ahead in a thread, up to `nireq` inferences run at once (default 2), composites run in `workers`
    threads (OpenCV releases the GIL), and the consumer encodes while the next frames are in flight. Setting `stop`
    ends the stream after the frames in flight, even while the decoder is blocked on its input.
    """
    clock = clock or StageClock()
    engine = _Inference(predictor, nireq)
    decoded = queue.Queue(maxsize=engine.depth + workers + 2)  # type: queue.Queue[Any]
    halt = threading.Event()
    reader = _decode_thread(frames, decoded, clock, halt)
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="edgematte-composite")
    in_flight = deque()  # type: Deque[Tuple[np.ndarray, Any, float]]
    rendering = deque()  # type: Deque[Future]
    # the smoother keeps state, so it runs in order, on one thread of its own, off the inference loop
    smoothing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edgematte-smooth") if smoother else None

    def timed_smooth(frame: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        began = time.perf_counter()
        result = smoother(frame, alpha)
        clock.add("smooth", time.perf_counter() - began)
        return result

    def timed_render(frame: np.ndarray, alpha: np.ndarray) -> Any:
        began = time.perf_counter()
        result = render(frame, alpha)
        clock.add("composite", time.perf_counter() - began)
        return result

    def finish_oldest() -> None:
        frame, handle, started = in_flight.popleft()
        raw, is_raw = engine.collect(handle, frame.shape[:2])
        if engine.asynchronous:
            clock.add("infer", time.perf_counter() - started)
        began = time.perf_counter()
        alpha = engine.finish(raw, frame.shape[:2]) if is_raw else raw
        engine.release(handle)
        clock.add("postprocess", time.perf_counter() - began)
        if smoothing is not None:
            smoothed = smoothing.submit(timed_smooth, frame, alpha)
            rendering.append(pool.submit(lambda: timed_render(frame, smoothed.result())))
        else:
            rendering.append(pool.submit(timed_render, frame, alpha))

    try:
        while True:
            item = _next(decoded, stop)
            if item is _END:
                break
            if isinstance(item, _Failure):
                raise item.exc
            began = time.perf_counter()
            prepared = engine.prepare(item)
            clock.add("preprocess", time.perf_counter() - began)
            started = time.perf_counter()
            handle = engine.start(prepared)
            if not engine.asynchronous:
                clock.add("infer", time.perf_counter() - started)
            in_flight.append((item, handle, started))
            if len(in_flight) >= engine.depth:
                finish_oldest()
            while rendering and (len(rendering) > workers or rendering[0].done()):
                yield _counted(rendering.popleft().result(), clock)
        while in_flight:
            finish_oldest()
        while rendering:
            yield _counted(rendering.popleft().result(), clock)
    finally:
        halt.set()
        for _, handle, _ in in_flight:
            if engine.asynchronous:
                handle.wait()
        pool.shutdown(wait=True)
        if smoothing is not None:
            smoothing.shutdown(wait=True)
        deadline = time.perf_counter() + 2.0
        while reader.is_alive() and time.perf_counter() < deadline:  # unblock a decoder waiting on a full queue;
            try:  # one blocked on its input (a quiet stdin) is a daemon thread and is left behind
                decoded.get_nowait()
            except queue.Empty:
                pass
            reader.join(timeout=0.05)
        clock.ended = time.perf_counter()


def _next(decoded: "queue.Queue[Any]", stop: Optional[threading.Event]) -> Any:
    """The next decoded item, or the end once `stop` is set."""
    while True:
        if stop is not None and stop.is_set():
            return _END
        try:
            return decoded.get(timeout=0.1)
        except queue.Empty:
            continue


def _counted(result: Any, clock: StageClock) -> Any:
    clock.frames += 1
    return result


def write_stream(results: Iterable[Any], sink: Any, clock: StageClock,
                 on_frame: Optional[Callable[[], None]] = None) -> None:
    """Feed rendered frames to `sink.write`, timing it as the encode stage."""
    for rendered in results:
        began = time.perf_counter()
        sink.write(rendered)
        clock.add("encode", time.perf_counter() - began)
        if on_frame is not None:
            on_frame()


__all__ = ["StageClock", "render_stream", "write_stream", "STAGES"]
