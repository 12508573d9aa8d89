/**
 * Captcha images drawn in the Worker as SVG. Every glyph is a hand-made stroke font
 * (polylines on a 10×14 grid) rendered as `<path>` outlines after per-glyph rotation,
 * scaling, skew and offset, per-point jitter and a global wave warp, under noise curves
 * and dots. The SVG carries no text, ids or comments: the answer exists only as geometry.
 */

type Pt = [number, number]
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

/** Uniform random integers from WebCrypto (rejection sampling, no modulo bias). */
export function randomInt(maxExclusive: number): number {
  const limit = Math.floor(0x1_0000_0000 / maxExclusive) * maxExclusive
  const buf = new Uint32Array(1)
  for (;;) {
    crypto.getRandomValues(buf)
    if (buf[0] < limit) return buf[0] % maxExclusive
  }
}

const rand = (min: number, max: number) => min + (randomInt(1_000_000) / 1_000_000) * (max - min)

export function randomAnswer(length: number): string {
  let s = ''
  for (let i = 0; i < length; i++) s += ALPHABET[randomInt(ALPHABET.length)]
  return s
}

/** Whole-image distortion: a pair of sine waves, different for every image. */
function warper(): (p: Pt) => Pt {
  const ay = rand(2, 4)
  const fy = rand(0.035, 0.06)
  const py = rand(0, Math.PI * 2)
  const ax = rand(1, 2.5)
  const fx = rand(0.06, 0.1)
  const px = rand(0, Math.PI * 2)
  return ([x, y]) => [x + ax * Math.sin(y * fx + px), y + ay * Math.sin(x * fy + py)]
}

/** Splits segments into ~2 px steps so jitter and warp bend straight lines. */
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

const f = (n: number) => (Math.round(n * 10) / 10).toString()
const pathD = (pts: Pt[]) => pts.map(([x, y], i) => `${i ? 'L' : 'M'}${f(x)} ${f(y)}`).join('')
/** Colours as hsl(): hex notation could spell answer characters (A-F, 3, 4, 7, 9). */
const hsl = (h: number, s: number, l: number) => `hsl(${Math.round(h)},${Math.round(s)}%,${Math.round(l)}%)`

export const WIDTH = 200
export const HEIGHT = 70

export function renderCaptchaSvg(answer: string): string {
  const warp = warper()
  const parts: string[] = []
  parts.push(`<rect width="${WIDTH}" height="${HEIGHT}" fill="${hsl(rand(0, 360), rand(20, 45), rand(93, 97))}"/>`)

  // noise under the glyphs
  for (let i = 0; i < 3; i++) parts.push(noiseCurve(warp, rand(0.8, 1.6), 0.55))

  const n = answer.length
  const cell = (WIDTH - 24) / n
  for (let i = 0; i < n; i++) {
    const glyph = GLYPHS[answer[i]]
    const scale = rand(2.2, 2.7)
    const sx = scale * rand(0.85, 1.12)
    const sy = scale * rand(0.9, 1.1)
    const rot = (rand(-24, 24) * Math.PI) / 180
    const skew = rand(-0.25, 0.25)
    const cx = 12 + cell * (i + 0.5) + rand(-3, 3)
    const cy = HEIGHT / 2 + rand(-5, 5)
    const cos = Math.cos(rot)
    const sin = Math.sin(rot)
    const colour = hsl(rand(0, 360), rand(45, 80), rand(18, 36))
    const width = rand(2.4, 3.4)
    for (const stroke of glyph) {
      const pts = subdivide(stroke, 0.8).map(([gx, gy]): Pt => {
        // centre the 10×14 glyph box, skew, scale, rotate, place, jitter, then warp
        const x0 = (gx - 5 + (gy - 7) * skew) * sx
        const y0 = (gy - 7) * sy
        const x = cx + x0 * cos - y0 * sin + rand(-0.5, 0.5)
        const y = cy + x0 * sin + y0 * cos + rand(-0.5, 0.5)
        return warp([x, y])
      })
      parts.push(`<path d="${pathD(pts)}" fill="none" stroke="${colour}" stroke-width="${f(width)}" stroke-linecap="round" stroke-linejoin="round"/>`)
    }
  }

  // noise over the glyphs: curves crossing them and speckles
  for (let i = 0; i < 3; i++) parts.push(noiseCurve(warp, rand(1.2, 2.2), 0.8))
  for (let i = 0; i < 45; i++) {
    parts.push(`<circle cx="${f(rand(0, WIDTH))}" cy="${f(rand(0, HEIGHT))}" r="${f(rand(0.6, 1.8))}" fill="${hsl(rand(0, 360), rand(30, 70), rand(25, 60))}"/>`)
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}">${parts.join('')}</svg>`
}

function noiseCurve(warp: (p: Pt) => Pt, width: number, opacity: number): string {
  const pts: Pt[] = []
  const y0 = rand(8, HEIGHT - 8)
  const amp = rand(6, 18)
  const freq = rand(0.02, 0.05)
  const phase = rand(0, Math.PI * 2)
  for (let x = -4; x <= WIDTH + 4; x += 5) pts.push(warp([x, y0 + amp * Math.sin(x * freq + phase)]))
  return `<path d="${pathD(pts)}" fill="none" stroke="${hsl(rand(0, 360), rand(30, 70), rand(25, 55))}" stroke-width="${f(width)}" stroke-opacity="${opacity}"/>`
}
