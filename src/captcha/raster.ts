/**
 * A small RGB rasterizer for the captcha: anti-aliased thick polylines, smooth random
 * fields, a displacement warp of the whole picture, and quantization to a palette with
 * grain. Channels are floats 0..255 until the end so blending and resampling do not band.
 */

export type Pt = [number, number]
export type Rgb = [number, number, number]

export class Raster {
  readonly data: Float32Array
  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    this.data = new Float32Array(width * height * 3)
  }
}

/**
 * Strokes a polyline with round caps and joins; `radii[i]` is the half width at `pts[i]`,
 * interpolated along each segment. Coverage is the distance to the centre line, clamped
 * to one pixel of ramp (anti-aliasing); a stroke's own segments combine by maximum, so
 * joints are not darker than the line, and the stroke is then blended once.
 */
export function stroke(img: Raster, pts: Pt[], radii: number[], colour: Rgb, alpha = 1): void {
  const { width, height, data } = img
  let minX = Infinity
  let minY = Infinity
  let maxX = -Infinity
  let maxY = -Infinity
  pts.forEach(([x, y], i) => {
    minX = Math.min(minX, x - radii[i])
    maxX = Math.max(maxX, x + radii[i])
    minY = Math.min(minY, y - radii[i])
    maxY = Math.max(maxY, y + radii[i])
  })
  const bx0 = Math.max(0, Math.floor(minX - 1))
  const by0 = Math.max(0, Math.floor(minY - 1))
  const bx1 = Math.min(width - 1, Math.ceil(maxX + 1))
  const by1 = Math.min(height - 1, Math.ceil(maxY + 1))
  if (bx0 > bx1 || by0 > by1) return
  const bw = bx1 - bx0 + 1
  const mask = new Float32Array(bw * (by1 - by0 + 1))

  const segments = Math.max(1, pts.length - 1)
  for (let s = 0; s < segments; s++) {
    const [ax, ay] = pts[s]
    const [bx, by] = pts[Math.min(s + 1, pts.length - 1)]
    const ra = radii[s]
    const rb = radii[Math.min(s + 1, pts.length - 1)]
    const dx = bx - ax
    const dy = by - ay
    const len2 = dx * dx + dy * dy
    const r = Math.max(ra, rb) + 1
    const x0 = Math.max(bx0, Math.floor(Math.min(ax, bx) - r))
    const x1 = Math.min(bx1, Math.ceil(Math.max(ax, bx) + r))
    const y0 = Math.max(by0, Math.floor(Math.min(ay, by) - r))
    const y1 = Math.min(by1, Math.ceil(Math.max(ay, by) + r))
    for (let py = y0; py <= y1; py++) {
      const cy = py + 0.5
      for (let px = x0; px <= x1; px++) {
        const cx = px + 0.5
        let t = len2 > 0 ? ((cx - ax) * dx + (cy - ay) * dy) / len2 : 0
        t = t < 0 ? 0 : t > 1 ? 1 : t
        const ex = ax + t * dx - cx
        const ey = ay + t * dy - cy
        const cover = ra + (rb - ra) * t + 0.5 - Math.sqrt(ex * ex + ey * ey)
        if (cover <= 0) continue
        const m = (py - by0) * bw + (px - bx0)
        const c = cover > 1 ? 1 : cover
        if (c > mask[m]) mask[m] = c
      }
    }
  }

  const [cr, cg, cb] = colour
  for (let py = by0; py <= by1; py++) {
    for (let px = bx0; px <= bx1; px++) {
      const a = mask[(py - by0) * bw + (px - bx0)] * alpha
      if (a === 0) continue
      const i = (py * width + px) * 3
      data[i] += (cr - data[i]) * a
      data[i + 1] += (cg - data[i + 1]) * a
      data[i + 2] += (cb - data[i + 2]) * a
    }
  }
}

/**
 * Resamples the whole picture through a displacement field: output pixel p takes the
 * (bilinear) colour of the source at p + (dx[p], dy[p]). A smooth field bends strokes,
 * noise and background alike, so no part of the picture keeps straight, comparable
 * geometry.
 */
export function warp(src: Raster, dx: Float32Array, dy: Float32Array): Raster {
  const { width, height, data } = src
  const out = new Raster(width, height)
  const o = out.data
  for (let y = 0, p = 0; y < height; y++) {
    for (let x = 0; x < width; x++, p++) {
      const sx = Math.min(width - 1, Math.max(0, x + dx[p]))
      const sy = Math.min(height - 1, Math.max(0, y + dy[p]))
      const x0 = Math.floor(sx)
      const y0 = Math.floor(sy)
      const x1 = Math.min(width - 1, x0 + 1)
      const y1 = Math.min(height - 1, y0 + 1)
      const fx = sx - x0
      const fy = sy - y0
      const i00 = (y0 * width + x0) * 3
      const i10 = (y0 * width + x1) * 3
      const i01 = (y1 * width + x0) * 3
      const i11 = (y1 * width + x1) * 3
      const i = p * 3
      for (let c = 0; c < 3; c++) {
        const top = data[i00 + c] + (data[i10 + c] - data[i00 + c]) * fx
        const bottom = data[i01 + c] + (data[i11 + c] - data[i01 + c]) * fx
        o[i + c] = top + (bottom - top) * fy
      }
    }
  }
  return out
}

/**
 * Indexed colour (a PNG palette of at most 256 entries): a third of the bytes of RGB to
 * compress, which is most of the cost of a PNG. Each pixel is shifted by `grain[p]` (the
 * same on its three channels, so it dithers rather than tints) and put in a bin of 4 bits
 * per channel; the 256 fullest bins become the palette, each entry the mean colour of its
 * pixels, and every other bin takes its nearest entry.
 */
export function toIndexed(img: Raster, grain: Int8Array): { index: Uint8Array; palette: number[][] } {
  const { data } = img
  const pixels = data.length / 3
  const bins = new Uint16Array(pixels)
  const count = new Uint32Array(4096)
  const sum = new Float64Array(4096 * 3)
  const clamp = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : v)
  for (let p = 0, i = 0; p < pixels; p++, i += 3) {
    const g = grain[p]
    const r = clamp(data[i] + g)
    const gr = clamp(data[i + 1] + g)
    const b = clamp(data[i + 2] + g)
    const bin = ((r >> 4) << 8) | ((gr >> 4) << 4) | (b >> 4)
    bins[p] = bin
    count[bin]++
    sum[bin * 3] += r
    sum[bin * 3 + 1] += gr
    sum[bin * 3 + 2] += b
  }
  const used: number[] = []
  for (let b = 0; b < 4096; b++) if (count[b]) used.push(b)
  used.sort((a, b) => count[b] - count[a])
  const entries = Math.min(256, used.length)
  const pal = new Float32Array(entries * 3)
  const lut = new Uint8Array(4096)
  for (let k = 0; k < entries; k++) {
    const b = used[k]
    for (let c = 0; c < 3; c++) pal[k * 3 + c] = Math.round(sum[b * 3 + c] / count[b])
    lut[b] = k
  }
  for (let k = entries; k < used.length; k++) {
    const b = used[k]
    const r = sum[b * 3] / count[b]
    const g = sum[b * 3 + 1] / count[b]
    const bl = sum[b * 3 + 2] / count[b]
    let best = 0
    let bestD = Infinity
    for (let j = 0; j < entries; j++) {
      const dr = pal[j * 3] - r
      const dg = pal[j * 3 + 1] - g
      const db = pal[j * 3 + 2] - bl
      const d = dr * dr + dg * dg + db * db
      if (d < bestD) {
        bestD = d
        best = j
      }
    }
    lut[b] = best
  }
  const palette = Array.from({ length: entries }, (_, k) => [pal[k * 3], pal[k * 3 + 1], pal[k * 3 + 2]])
  const index = new Uint8Array(pixels)
  for (let p = 0; p < pixels; p++) index[p] = lut[bins[p]]
  return { index, palette }
}

/**
 * Smooth random values over the picture (value noise): random values on a lattice
 * `cell` pixels apart, smoothstep-interpolated, added into `out` (so fields can be summed).
 */
export function valueNoise(width: number, height: number, cell: number, value: () => number, out = new Float32Array(width * height)): Float32Array {
  const cols = Math.ceil(width / cell) + 2
  const rows = Math.ceil(height / cell) + 2
  const grid = Float32Array.from({ length: cols * rows }, value)
  const smooth = (t: number) => t * t * (3 - 2 * t)
  const colAt = new Int32Array(width)
  const colT = new Float32Array(width)
  for (let x = 0; x < width; x++) {
    const g = (x + 0.5) / cell
    colAt[x] = Math.floor(g)
    colT[x] = smooth(g - colAt[x])
  }
  for (let y = 0, p = 0; y < height; y++) {
    const g = (y + 0.5) / cell
    const iy = Math.floor(g)
    const fy = smooth(g - iy)
    const r0 = iy * cols
    const r1 = r0 + cols
    for (let x = 0; x < width; x++, p++) {
      const ix = colAt[x]
      const fx = colT[x]
      const top = grid[r0 + ix] + (grid[r0 + ix + 1] - grid[r0 + ix]) * fx
      const bottom = grid[r1 + ix] + (grid[r1 + ix + 1] - grid[r1 + ix]) * fx
      out[p] += top + (bottom - top) * fy
    }
  }
  return out
}

/** Adds amplitude · sin(kx·x + ky·y + phase) to every pixel of `out` (a plane wave). */
export function addWave(out: Float32Array, width: number, height: number, kx: number, ky: number, phase: number, amplitude: number): void {
  // sin(a + b) = sin a cos b + cos a sin b: one sine per column and per row, not per pixel
  const sx = Float32Array.from({ length: width }, (_, x) => amplitude * Math.sin(kx * (x + 0.5) + phase))
  const cx = Float32Array.from({ length: width }, (_, x) => amplitude * Math.cos(kx * (x + 0.5) + phase))
  for (let y = 0, p = 0; y < height; y++) {
    const cy = Math.cos(ky * (y + 0.5))
    const sy = Math.sin(ky * (y + 0.5))
    for (let x = 0; x < width; x++, p++) out[p] += sx[x] * cy + cx[x] * sy
  }
}

/** HSL (degrees, percent, percent) to RGB 0..255. */
export function hsl(h: number, s: number, l: number): Rgb {
  const sat = s / 100
  const lig = l / 100
  const k = (n: number) => (n + h / 30) % 12
  const a = sat * Math.min(lig, 1 - lig)
  const f = (n: number) => 255 * (lig - a * Math.max(-1, Math.min(k(n) - 3, 9 - k(n), 1)))
  return [f(0), f(8), f(4)]
}
