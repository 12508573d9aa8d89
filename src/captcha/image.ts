/**
 * Captcha pictures drawn in the Worker as PNG pixels. Glyphs come from a hand-made stroke
 * font (polylines on a 10×14 grid), rasterized as anti-aliased thick strokes, each glyph
 * with its own rotation, scale, skew, offset, colour and pen width, kerned so neighbours
 * touch; a curve through the text, fragments and dots are drawn with the same pen
 * (colours and widths); a smooth displacement field then bends the whole raster, and
 * per-pixel grain dithers it into a 256-colour palette. The PNG holds pixels only
 * (IHDR, PLTE, IDAT, IEND): nothing in it tells letters from noise but what a reader sees.
 */
import { encode } from 'fast-png'
import { addWave, hsl, Raster, stroke, toIndexed, valueNoise, warp, type Pt, type Rgb } from './raster'

type Stroke = Pt[]

/** Points of an elliptical arc, angles in degrees, y pointing down (90° is the bottom). */
function arc(cx: number, cy: number, rx: number, ry: number, from: number, to: number, steps = 10): Pt[] {
  const out: Pt[] = []
  for (let i = 0; i <= steps; i++) {
    const a = ((from + ((to - from) * i) / steps) * Math.PI) / 180
    out.push([cx + rx * Math.cos(a), cy + ry * Math.sin(a)])
  }
  return out
}

/**
 * The alphabet: no 0/O/Q/D-lookalikes beyond D itself, no 1/I/L, no 2/Z, 5/S, 6/G, 8/B.
 * Answers are compared case-insensitively, so only upper case is drawn.
 */
export const GLYPHS: Record<string, Stroke[]> = {
  A: [[[0, 14], [5, 0], [10, 14]], [[2.2, 8.5], [7.8, 8.5]]],
  C: [arc(5.5, 7, 4.8, 7, -45, -315, 14)],
  D: [[[0, 0], [0, 14]], [[0, 0], [3, 0], ...arc(3, 7, 7, 7, -90, 90, 12), [0, 14]]],
  E: [[[10, 0], [0, 0], [0, 14], [10, 14]], [[0, 7], [7, 7]]],
  F: [[[10, 0], [0, 0], [0, 14]], [[0, 7], [7, 7]]],
  H: [[[0, 0], [0, 14]], [[10, 0], [10, 14]], [[0, 7], [10, 7]]],
  J: [[[3, 0], [10, 0]], [[8, 0], [8, 10], ...arc(4.5, 10, 3.5, 4, 0, 180, 8)]],
  K: [[[0, 0], [0, 14]], [[10, 0], [0, 8.5]], [[3.2, 5.8], [10, 14]]],
  M: [[[0, 14], [0, 0], [5, 8], [10, 0], [10, 14]]],
  N: [[[0, 14], [0, 0], [10, 14], [10, 0]]],
  P: [[[0, 14], [0, 0], [5.5, 0], ...arc(5.5, 3.75, 4.5, 3.75, -90, 90, 8), [0, 7.5]]],
  R: [[[0, 14], [0, 0], [5.5, 0], ...arc(5.5, 3.75, 4.5, 3.75, -90, 90, 8), [0, 7.5]], [[4.5, 7.5], [10, 14]]],
  T: [[[0, 0], [10, 0]], [[5, 0], [5, 14]]],
  U: [[[0, 0], [0, 9], ...arc(5, 9, 5, 5, 180, 0, 10), [10, 0]]],
  V: [[[0, 0], [5, 14], [10, 0]]],
  W: [[[0, 0], [2.5, 14], [5, 4], [7.5, 14], [10, 0]]],
  X: [[[0, 0], [10, 14]], [[10, 0], [0, 14]]],
  Y: [[[0, 0], [5, 7], [10, 0]], [[5, 7], [5, 14]]],
  '3': [[[1, 0], [9, 0], [4.5, 5.2], ...arc(5, 9.4, 4.6, 4.6, -100, 150, 12)]],
  '4': [[[7, 14], [7, 0], [0, 10], [10, 10]]],
  '7': [[[0, 0], [10, 0], [3.5, 14]], [[3, 7], [8.5, 7]]],
  '9': [arc(5, 4.6, 4.6, 4.6, 0, 360, 16), [[9.6, 4.6], [9, 9], [4, 14]]],
}

export const ALPHABET = Object.keys(GLYPHS).join('')

/**
 * Randomness from WebCrypto, drawn in blocks: a picture takes a few thousand values and
 * one getRandomValues call per value would cost more than the drawing.
 */
const pool = new Uint32Array(4096)
let poolAt = pool.length
function u32(): number {
  if (poolAt === pool.length) {
    crypto.getRandomValues(pool)
    poolAt = 0
  }
  return pool[poolAt++]
}

/** Uniform random integers from WebCrypto (rejection sampling, no modulo bias). */
export function randomInt(maxExclusive: number): number {
  const limit = Math.floor(0x1_0000_0000 / maxExclusive) * maxExclusive
  for (;;) {
    const v = u32()
    if (v < limit) return v % maxExclusive
  }
}

const rand = (min: number, max: number) => min + (u32() / 0x1_0000_0000) * (max - min)
const pick = <T>(xs: readonly T[]): T => xs[randomInt(xs.length)]

export function randomAnswer(length: number): string {
  let s = ''
  for (let i = 0; i < length; i++) s += ALPHABET[randomInt(ALPHABET.length)]
  return s
}

export const WIDTH = 200
export const HEIGHT = 70

/**
 * One pen for glyphs and noise alike: colours and widths come from these two functions
 * only, so neither colour nor stroke width separates a letter from a noise line.
 */
const inkColour = (): Rgb => hsl(rand(0, 360), rand(50, 85), rand(18, 38))
const penRadius = () => rand(1.35, 2.05)

/** Pen pressure: the half width wanders ±15 % along a stroke. */
function radii(pts: Pt[], base: number): number[] {
  const freq = rand(0.08, 0.2)
  const phase = rand(0, Math.PI * 2)
  let run = 0
  return pts.map((p, i) => {
    if (i) run += Math.hypot(p[0] - pts[i - 1][0], p[1] - pts[i - 1][1])
    return base * (1 + 0.15 * Math.sin(run * freq + phase))
  })
}

/** Splits segments into `step`-long pieces so jitter and the warp can bend them. */
function subdivide(stroke: Pt[], step: number): Pt[] {
  const out: Pt[] = [stroke[0]]
  for (let i = 1; i < stroke.length; i++) {
    const [x0, y0] = stroke[i - 1]
    const [x1, y1] = stroke[i]
    const n = Math.max(1, Math.ceil(Math.hypot(x1 - x0, y1 - y0) / step))
    for (let k = 1; k <= n; k++) out.push([x0 + ((x1 - x0) * k) / n, y0 + ((y1 - y0) * k) / n])
  }
  return out
}

interface Glyph {
  /** Strokes in pixels around the glyph's centre. */
  strokes: Pt[][]
  minY: number
  maxY: number
  colour: Rgb
  radius: number
}

/** A glyph's strokes in pixels around its own centre: skew, scale, rotation, jitter. */
function shapeGlyph(ch: string, size: number): Glyph {
  const scale = size * rand(2.85, 3.2)
  const sx = scale * rand(0.85, 1.15)
  const sy = scale * rand(0.92, 1.08)
  const rot = (rand(-15, 15) * Math.PI) / 180
  const skew = rand(-0.28, 0.28)
  const cos = Math.cos(rot)
  const sin = Math.sin(rot)
  const strokes = GLYPHS[ch].map((s) =>
    subdivide(s, 1.2).map(([gx, gy]): Pt => {
      const x0 = (gx - 5 + (gy - 7) * skew) * sx
      const y0 = (gy - 7) * sy
      return [x0 * cos - y0 * sin + rand(-0.35, 0.35), x0 * sin + y0 * cos + rand(-0.35, 0.35)]
    }),
  )
  const ys = strokes.flat().map((p) => p[1])
  return { strokes, minY: Math.min(...ys), maxY: Math.max(...ys), colour: inkColour(), radius: penRadius() }
}

/** Leftmost and rightmost ink (centre line ± pen) of a glyph centred at height cy, per pixel row, relative to its centre. */
function rowProfile(g: Glyph, cy: number): { left: Float32Array; right: Float32Array } {
  const left = new Float32Array(HEIGHT).fill(Infinity)
  const right = new Float32Array(HEIGHT).fill(-Infinity)
  const r = g.radius
  for (const s of g.strokes) {
    for (const [x, y] of subdivide(s, 0.5)) {
      for (let row = Math.max(0, Math.floor(cy + y - r)); row <= Math.min(HEIGHT - 1, Math.floor(cy + y + r)); row++) {
        if (x - r < left[row]) left[row] = x - r
        if (x + r > right[row]) right[row] = x + r
      }
    }
  }
  return { left, right }
}

/**
 * Centres for the glyphs, kerned row by row like handwriting: each glyph moves left until
 * its ink is between 2.5 px clear of and 0.5 px into its neighbour's (before the warp), so neighbours touch or
 * cross and no clean gap marks where to cut the word. Null when the word does not fit.
 */
function layout(glyphs: Glyph[]): Pt[] | null {
  const cys = glyphs.map((g) => Math.min(HEIGHT - 5 - g.maxY, Math.max(5 - g.minY, HEIGHT / 2 + rand(-6, 6))))
  const profiles = glyphs.map((g, i) => rowProfile(g, cys[i]))
  const xs = [0]
  for (let i = 1; i < glyphs.length; i++) {
    const prev = profiles[i - 1]
    const cur = profiles[i]
    let d = -Infinity
    for (let row = 0; row < HEIGHT; row++) d = Math.max(d, xs[i - 1] + prev.right[row] - cur.left[row])
    xs.push(d + rand(-0.5, 2.5))
  }
  let lo = Infinity
  let hi = -Infinity
  profiles.forEach((p, i) => {
    for (let row = 0; row < HEIGHT; row++) {
      lo = Math.min(lo, xs[i] + p.left[row])
      hi = Math.max(hi, xs[i] + p.right[row])
    }
  })
  const slack = WIDTH - 10 - (hi - lo)
  if (slack < 0) return null
  const shift = 5 + rand(0.2, 0.8) * slack - lo
  return xs.map((x, i) => [x + shift, cys[i]])
}

/**
 * A long smooth curve across the text (cubic Bézier), entering in the upper or lower third
 * and leaving in the other, so it crosses letters at a slant rather than along the
 * middle, where it would read as a crossbar of A, E, F, H.
 */
function noiseCurve(): Pt[] {
  const high = () => rand(HEIGHT * 0.15, HEIGHT * 0.35)
  const low = () => rand(HEIGHT * 0.65, HEIGHT * 0.85)
  const down = randomInt(2) === 1
  const p0: Pt = [rand(-10, 20), down ? high() : low()]
  const p3: Pt = [rand(WIDTH - 20, WIDTH + 10), down ? low() : high()]
  const p1: Pt = [rand(50, 90), rand(HEIGHT * 0.1, HEIGHT * 0.9)]
  const p2: Pt = [rand(110, 150), rand(HEIGHT * 0.1, HEIGHT * 0.9)]
  const out: Pt[] = []
  for (let i = 0; i <= 60; i++) {
    const t = i / 60
    const u = 1 - t
    const b = [u * u * u, 3 * u * u * t, 3 * u * t * t, t * t * t]
    out.push([b[0] * p0[0] + b[1] * p1[0] + b[2] * p2[0] + b[3] * p3[0], b[0] * p0[1] + b[1] * p1[1] + b[2] * p2[1] + b[3] * p3[1]])
  }
  return out
}

/**
 * Whether points drawn with a given pen stay 2.5 px clear of the glyphs' ink (their pens
 * can swell 15 %). Ink points are kept in 10 px buckets so a test looks at 9 buckets.
 */
function clearOf(glyphs: { strokes: Pt[][]; radius: number }[]): (pts: Pt[], radius: number) => boolean {
  const CELL = 10
  const cols = Math.ceil(WIDTH / CELL) + 2
  const buckets = new Map<number, number[]>()
  for (const g of glyphs) {
    for (const s of g.strokes) {
      for (const [x, y] of subdivide(s, 1.5)) {
        const key = (Math.floor(y / CELL) + 1) * cols + Math.floor(x / CELL) + 1
        const b = buckets.get(key) ?? buckets.set(key, []).get(key)!
        b.push(x, y, g.radius * 1.15)
      }
    }
  }
  return (pts, radius) =>
    pts.every(([x, y]) => {
      const cx = Math.floor(x / CELL) + 1
      const cy = Math.floor(y / CELL) + 1
      for (let dy = -1; dy <= 1; dy++) {
        for (let dx = -1; dx <= 1; dx++) {
          const b = buckets.get((cy + dy) * cols + cx + dx)
          if (!b) continue
          for (let k = 0; k < b.length; k += 3) if ((x - b[k]) ** 2 + (y - b[k + 1]) ** 2 <= (radius + b[k + 2] + 2.5) ** 2) return false
        }
      }
      return true
    })
}

/**
 * A short arc or bar of ink that belongs to no letter, at least 2.5 px clear of every
 * glyph: touching one it would too easily turn C into G, P into R or F into E. Null when
 * no clear place turned up (a crowded picture simply gets fewer).
 */
function noiseFragment(clear: (pts: Pt[], radius: number) => boolean, radius: number): Pt[] | null {
  for (let tries = 0; tries < 30; tries++) {
    const cx = rand(0, WIDTH)
    const cy = rand(0, HEIGHT)
    let pts: Pt[]
    if (randomInt(2)) {
      const r = rand(3, 7)
      const from = rand(0, Math.PI * 2)
      const sweep = rand(0.8, 2.2) * (randomInt(2) ? 1 : -1)
      pts = Array.from({ length: 9 }, (_, i): Pt => [cx + r * Math.cos(from + (sweep * i) / 8), cy + r * Math.sin(from + (sweep * i) / 8)])
    } else {
      const len = rand(5, 11)
      const a = rand(0, Math.PI)
      pts = subdivide([[cx - (len / 2) * Math.cos(a), cy - (len / 2) * Math.sin(a)], [cx + (len / 2) * Math.cos(a), cy + (len / 2) * Math.sin(a)]], 1.5)
    }
    if (clear(pts, radius)) return pts
  }
  return null
}

/**
 * The displacement field bending the whole raster: two plane waves per axis (wavelengths
 * 45–110 px) plus lattice noise (24 px cells), a few pixels at most.
 */
function displacement(): [Float32Array, Float32Array] {
  const axis = (amplitudes: number[], noise: number) => {
    const out = valueNoise(WIDTH, HEIGHT, 24, () => rand(-noise, noise))
    for (const amp of amplitudes) {
      const angle = rand(0, Math.PI * 2)
      const k = (Math.PI * 2) / rand(45, 110)
      addWave(out, WIDTH, HEIGHT, k * Math.cos(angle), k * Math.sin(angle), rand(0, Math.PI * 2), rand(amp / 2, amp))
    }
    return out
  }
  return [axis([2.2, 1.6], 2.2), axis([2.6, 1.6], 2.2)]
}

/** The picture before it is quantized (channels as floats). */
function drawRaster(answer: string): Raster {
  const img = new Raster(WIDTH, HEIGHT)

  // background: a light colour with soft blotches of a second one, and a finer mottle
  const base = hsl(rand(0, 360), rand(20, 45), rand(88, 94))
  const other = hsl(rand(0, 360), rand(25, 55), rand(80, 90))
  const blotch = valueNoise(WIDTH, HEIGHT, rand(18, 30), () => rand(0, 0.8))
  const mottle = valueNoise(WIDTH, HEIGHT, rand(4, 7), () => rand(-10, 10))
  for (let p = 0; p < blotch.length; p++) {
    for (let c = 0; c < 3; c++) img.data[p * 3 + c] = base[c] + (other[c] - base[c]) * blotch[p] + mottle[p]
  }

  // a word too wide for the picture (wide, rotated glyphs) is shaped again a little smaller
  let glyphs: Glyph[] = []
  let centres: Pt[] | null = null
  for (let size = 1; !centres; size *= 0.93) {
    glyphs = [...answer].map((ch) => shapeGlyph(ch, size))
    centres = layout(glyphs)
  }
  const placed = glyphs.map((g, i) => g.strokes.map((s) => s.map(([x, y]): Pt => [centres[i][0] + x, centres[i][1] + y])))
  const pen = (pts: Pt[], colour = inkColour(), radius = penRadius()) => stroke(img, pts, radii(pts, radius), colour)

  // fragments of ink between the letters, in the letters' own colours and widths
  const clear = clearOf(placed.map((strokes, i) => ({ strokes, radius: glyphs[i].radius })))
  for (let i = 0; i < 4; i++) {
    const radius = penRadius()
    const fragment = noiseFragment(clear, radius)
    if (fragment) pen(fragment, i % 2 ? pick(glyphs).colour : inkColour(), radius)
  }

  placed.forEach((strokes, i) => {
    for (const s of strokes) pen(s, glyphs[i].colour, glyphs[i].radius)
  })

  // over the letters: a curve through them and dots of ink
  pen(noiseCurve(), randomInt(2) ? pick(glyphs).colour : inkColour())
  for (let i = 0; i < 40; i++) {
    const dot: Pt = [rand(0, WIDTH), rand(0, HEIGHT)]
    stroke(img, [dot], [rand(0.5, 1.4)], randomInt(3) ? inkColour() : hsl(rand(0, 360), rand(20, 60), rand(70, 90)))
  }

  return warp(img, ...displacement())
}

/** Grain of ±`amplitude` per pixel, one random byte each. */
function grain(amplitude: number): Int8Array {
  const out = new Int8Array(WIDTH * HEIGHT)
  const bytes = crypto.getRandomValues(new Uint8Array(WIDTH * HEIGHT))
  for (let p = 0; p < out.length; p++) out[p] = Math.round(((bytes[p] - 127.5) / 127.5) * amplitude)
  return out
}

/** The picture as a PNG file: WIDTH × HEIGHT, 8-bit palette, no text or other ancillary chunks. */
export function renderCaptchaPng(answer: string): Uint8Array {
  const { index, palette } = toIndexed(drawRaster(answer), grain(7))
  return encode({ width: WIDTH, height: HEIGHT, data: index, channels: 1, depth: 8, palette })
}

/** The bytes as one character per byte (Latin-1), for base64 and for searching them as text. */
export function latin1(bytes: Uint8Array): string {
  let s = ''
  for (let i = 0; i < bytes.length; i += 8192) s += String.fromCharCode(...bytes.subarray(i, i + 8192))
  return s
}

export const pngDataUri = (png: Uint8Array) => `data:image/png;base64,${btoa(latin1(png))}`
