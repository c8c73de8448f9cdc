"""The run's metric writer: TensorBoard event files, with or without TensorFlow installed.

clu's writers (and everything under `clu.metric_writers`) import TensorFlow. JAX images for GPUs
and TPUs often have none (NVIDIA's JAX containers, cloud TPU VMs, the GPU machine this project's
accelerator figures come from), and TensorFlow is needed here only to write the event files. So
without it the run writes the same kind of event files through the `tensorboard` package's own
pure-Python writer: scalars and images, readable by `tensorboard --logdir <workdir>` alike. The
choice is made once, when the writer is made, and logged.
"""
from __future__ import annotations

import importlib.util
import io
import time
from typing import Mapping

import numpy as np
from absl import logging
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter


def tensorflow_available() -> bool:
  return importlib.util.find_spec('tensorflow') is not None


def make_writer(workdir, *, is_main: bool, verbose: bool):
  """The writer for `workdir`: TensorBoard events on the main process (none elsewhere); with
  `verbose` every scalar is also logged. Each has write_scalars, write_images and flush."""
  if tensorflow_available():
    from clu import metric_writers  # pylint: disable=import-outside-toplevel  (imports TensorFlow)
    if not is_main:
      return metric_writers.MultiWriter([])
    writers = [metric_writers.SummaryWriter(str(workdir))]
    if verbose:
      writers.append(metric_writers.LoggingWriter())
    return metric_writers.MultiWriter(writers)
  if not is_main:
    return EventWriter(None, verbose=False)
  logging.info('TensorFlow is not installed: writing TensorBoard events with tensorboard\'s own '
               'writer (scalars and images).')
  return EventWriter(str(workdir), verbose=verbose)


class EventWriter:
  """TensorBoard event files without TensorFlow (tensorboard's EventFileWriter and protos, which
  import no TensorFlow).

  `logdir=None` writes nothing (the writer of a process that is not the main one)."""

  def __init__(self, logdir: str | None, verbose: bool = False):
    self._verbose = verbose
    self._events = EventFileWriter(logdir) if logdir is not None else None

  def _add(self, step: int, values: list) -> None:
    if self._events is None:
      return
    summary = summary_pb2.Summary(value=values)
    self._events.add_event(event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    self._add(step, [summary_pb2.Summary.Value(tag=k, simple_value=float(v))
                     for k, v in scalars.items()])
    if self._verbose:
      logging.info('[%d] %s', step, ', '.join(f'{k}={float(v):.6g}' for k, v in scalars.items()))

  def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
    """`images`: name -> [N, H, W, C] floats in [0, 1] (as clu's writers); the first is written."""
    if self._events is None:
      return
    from PIL import Image  # pylint: disable=import-outside-toplevel
    values = []
    for name, batch in images.items():
      pixels = np.clip(np.round(np.asarray(batch)[0] * 255), 0, 255).astype(np.uint8)
      if pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
      png = io.BytesIO()
      Image.fromarray(pixels).save(png, format='PNG')
      height, width = pixels.shape[:2]
      image = summary_pb2.Summary.Image(height=height, width=width,
                                        colorspace=1 if pixels.ndim == 2 else pixels.shape[-1],
                                        encoded_image_string=png.getvalue())
      values.append(summary_pb2.Summary.Value(tag=name, image=image))
    self._add(step, values)

  def flush(self) -> None:
    if self._events is not None:
      self._events.flush()

  def close(self) -> None:
    if self._events is not None:
      self._events.close()
