"""Puts the reals grid and each run's last G_ema grid side by side, labelled, in one PNG (the
README's sample figures).

    python launch/grid_strip.py out.png runs/a/reals.png "DCGAN=runs/a" "Diffusion-DCGAN=runs/b"

An argument `LABEL=DIR` takes the newest `fakes*.png` of the run folder DIR, `LABEL=FILE` that
image; a plain path is used as it is (labelled with its name, 'reals' for reals.png). Each panel is cropped to its top-left
`--rows` x `--rows` images of the grid (8 by default; the grids are 32x32 tiles) and panels are
scaled to a common height.
"""
import argparse
import pathlib
import sys

from PIL import Image, ImageDraw

LABEL_HEIGHT = 14


def newest_grid(run: pathlib.Path) -> pathlib.Path:
  grids = sorted(run.glob('fakes*.png'))
  if not grids:
    raise SystemExit(f'grid_strip: no fakes*.png in {run} (has the run written a sample grid?)')
  return grids[-1]


def panels(args: list[str]) -> list[tuple[str, pathlib.Path]]:
  out = []
  for arg in args:
    if '=' in arg:
      label, path = arg.split('=', 1)
      path = pathlib.Path(path)
      out.append((label, path if path.is_file() else newest_grid(path)))
    else:
      path = pathlib.Path(arg)
      out.append(('reals' if path.name == 'reals.png' else path.stem, path))
  return out


def strip(items: list[tuple[str, pathlib.Path]], tiles: int, tile: int, gap: int = 6) -> Image.Image:
  side = tiles * tile
  images = []
  for _, path in items:
    image = Image.open(path).convert('RGB')
    if image.width < side or image.height < side:
      raise SystemExit(f'grid_strip: {path} is {image.width}x{image.height}, smaller than '
                       f'{tiles}x{tiles} tiles of {tile} px; lower --rows.')
    images.append(image.crop((0, 0, side, side)))
  out = Image.new('RGB', (len(images) * (side + gap) - gap, side + LABEL_HEIGHT), 'white')
  draw = ImageDraw.Draw(out)
  for i, ((label, _), image) in enumerate(zip(items, images)):
    x = i * (side + gap)
    out.paste(image, (x, LABEL_HEIGHT))
    draw.text((x + 2, 1), label, fill='black')
  return out


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('out')
  parser.add_argument('panels', nargs='+')
  parser.add_argument('--rows', type=int, default=8, help='tiles per side of each panel')
  parser.add_argument('--tile', type=int, default=32, help='pixels per tile')
  args = parser.parse_args(argv)
  strip(panels(args.panels), args.rows, args.tile).save(args.out)
  print(f'grid_strip: wrote {args.out}', file=sys.stderr)


if __name__ == '__main__':
  main()
