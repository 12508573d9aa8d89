#!/usr/bin/env node
// `npm run ocr:captcha`: how often off-the-shelf OCR (tesseract) reads the captcha.
//
// Bundles src/captcha/image.ts (the code the Worker runs) with esbuild, draws N fresh
// captchas with random answers, and runs tesseract on each under every combination of
// page segmentation mode and preprocessing below, always with a whitelist of the captcha
// alphabet. Prints the exact-match and per-character rates as a Markdown table
// (README "Captcha" links the measured figures).
//
//   npm run ocr:captcha -- [--n 300] [--jobs 2] [--samples DIR] [--svg-ref REF]
//
// --svg-ref REF measures the SVG renderer of an older commit instead (the one before the
// raster captcha): its src/captcha/image.ts is taken from git, its SVGs are rasterized by
// headless Chromium (/usr/bin/chromium, as the browser tests use) at 200×70 and then
// measured the same way. --samples DIR writes the first pictures and their preprocessed
// forms there for a look.
//
// Needs tesseract on PATH (Debian: apt-get install -y tesseract-ocr).
import { build } from 'esbuild'
import { decode, encode } from 'fast-png'
import { execFileSync, execFile } from 'node:child_process'
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const args = process.argv.slice(2)
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 ? args[i + 1] : fallback
}
const N = Number(opt('n', 300))
const JOBS = Number(opt('jobs', Math.max(1, os.cpus().length)))
const SVG_REF = opt('svg-ref', null)
const SAMPLES = opt('samples', null)
const run = promisify(execFile)

let tesseractVersion
try {
  tesseractVersion = execFileSync('tesseract', ['--version']).toString().split('\n')[0].trim()
} catch {
  console.error('tesseract not found: apt-get install -y tesseract-ocr')
  process.exit(2)
}

const work = mkdtempSync(path.join(os.tmpdir(), 'captcha-ocr-'))
process.on('exit', () => rmSync(work, { recursive: true, force: true }))

// ---- the renderer under test -------------------------------------------------------------
async function loadRenderer(file) {
  const out = path.join(work, `renderer-${path.basename(path.dirname(file))}.mjs`)
  await build({ entryPoints: [file], bundle: true, format: 'esm', platform: 'neutral', target: 'es2022', outfile: out, logLevel: 'error' })
  return import(out)
}

/** N pictures as { answer, width, height, rgb } (8-bit RGB rows). */
async function captchas() {
  if (!SVG_REF) {
    const m = await loadRenderer(path.join(root, 'src/captcha/image.ts'))
    return Array.from({ length: N }, () => {
      const answer = m.randomAnswer(5)
      const png = decode(m.renderCaptchaPng(answer))
      return { answer, ...toRgb(png), alphabet: m.ALPHABET }
    })
  }
  const dir = path.join(work, 'old')
  mkdirSync(dir)
  writeFileSync(path.join(dir, 'image.ts'), execFileSync('git', ['-C', root, 'show', `${SVG_REF}:src/captcha/image.ts`]))
  const m = await loadRenderer(path.join(dir, 'image.ts'))
  const { chromium } = await import('playwright-core')
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium' })
  const page = await browser.newPage({ viewport: { width: m.WIDTH, height: m.HEIGHT }, deviceScaleFactor: 1 })
  const out = []
  for (let i = 0; i < N; i++) {
    const answer = m.randomAnswer(5)
    await page.setContent(`<body style="margin:0">${m.renderCaptchaSvg(answer)}</body>`)
    const shot = await page.screenshot({ clip: { x: 0, y: 0, width: m.WIDTH, height: m.HEIGHT } })
    out.push({ answer, ...toRgb(decode(shot)), alphabet: m.ALPHABET })
  }
  await browser.close()
  return out
}

function toRgb(png) {
  const { width, height, channels, data } = png
  const rgb = new Uint8Array(width * height * 3)
  for (let p = 0; p < width * height; p++) for (let c = 0; c < 3; c++) rgb[p * 3 + c] = data[p * channels + c]
  return { width, height, rgb }
}

// ---- preprocessing: what an attacker would try before OCR ----------------------------------
/** The darkest channel: light backgrounds go white, saturated ink of any hue stays dark. */
const minChannel = ({ width, height, rgb }) => {
  const g = new Float32Array(width * height)
  for (let p = 0; p < g.length; p++) g[p] = Math.min(rgb[p * 3], rgb[p * 3 + 1], rgb[p * 3 + 2])
  return { width, height, g }
}

const grey = ({ width, height, rgb }) => {
  const g = new Float32Array(width * height)
  for (let p = 0; p < g.length; p++) g[p] = 0.299 * rgb[p * 3] + 0.587 * rgb[p * 3 + 1] + 0.114 * rgb[p * 3 + 2]
  return { width, height, g }
}

function median3({ width, height, g }) {
  const out = new Float32Array(g.length)
  const win = []
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      win.length = 0
      for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) win.push(g[Math.min(height - 1, Math.max(0, y + dy)) * width + Math.min(width - 1, Math.max(0, x + dx))])
      win.sort((a, b) => a - b)
      out[y * width + x] = win[4]
    }
  }
  return { width, height, g: out }
}

function upscale({ width, height, g }, k) {
  const w = width * k
  const h = height * k
  const out = new Float32Array(w * h)
  for (let y = 0; y < h; y++) {
    const sy = Math.min(height - 1, Math.max(0, (y + 0.5) / k - 0.5))
    const y0 = Math.floor(sy)
    const y1 = Math.min(height - 1, y0 + 1)
    const fy = sy - y0
    for (let x = 0; x < w; x++) {
      const sx = Math.min(width - 1, Math.max(0, (x + 0.5) / k - 0.5))
      const x0 = Math.floor(sx)
      const x1 = Math.min(width - 1, x0 + 1)
      const fx = sx - x0
      const top = g[y0 * width + x0] + (g[y0 * width + x1] - g[y0 * width + x0]) * fx
      const bottom = g[y1 * width + x0] + (g[y1 * width + x1] - g[y1 * width + x0]) * fx
      out[y * w + x] = top + (bottom - top) * fy
    }
  }
  return { width: w, height: h, g: out }
}

/** Otsu's threshold: the grey level that best splits the histogram in two classes. */
function otsu({ width, height, g }) {
  const hist = new Float64Array(256)
  for (const v of g) hist[Math.max(0, Math.min(255, Math.round(v)))]++
  let sum = 0
  for (let i = 0; i < 256; i++) sum += i * hist[i]
  let wB = 0
  let sumB = 0
  let best = 0
  let threshold = 128
  for (let t = 0; t < 256; t++) {
    wB += hist[t]
    if (!wB || wB === g.length) continue
    sumB += t * hist[t]
    const mB = sumB / wB
    const mF = (sum - sumB) / (g.length - wB)
    const between = wB * (g.length - wB) * (mB - mF) ** 2
    if (between > best) {
      best = between
      threshold = t
    }
  }
  return { width, height, g: g.map((v) => (v > threshold ? 255 : 0)) }
}

const greyPng = ({ width, height, g }) => encode({ width, height, channels: 1, depth: 8, data: Uint8Array.from(g, (v) => Math.max(0, Math.min(255, Math.round(v)))) })
const rgbPng = ({ width, height, rgb }) => encode({ width, height, channels: 3, depth: 8, data: rgb })

const PREPROCESS = {
  'as served': (c) => rgbPng(c),
  'grey ×3, Otsu': (c) => greyPng(otsu(upscale(grey(c), 3))),
  'grey, median 3×3, ×3, Otsu': (c) => greyPng(otsu(upscale(median3(grey(c)), 3))),
  'darkest channel, median 3×3, ×3, Otsu': (c) => greyPng(otsu(upscale(median3(minChannel(c)), 3))),
}
const PSM = ['7', '8']

// ---- OCR ---------------------------------------------------------------------------------
const tesseract = (input, psm, alphabet) =>
  run('tesseract', [input, 'stdout', '--psm', psm, '--dpi', '300', '-c', `tessedit_char_whitelist=${alphabet}`], {
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, OMP_THREAD_LIMIT: '1' },
  })
const clean = (text) => text.replace(/\s+/g, '').toUpperCase()

/**
 * Runs tesseract over many images in a few processes (list-file mode: one model load per
 * process). tesseract 5.3 sometimes dies (SIGFPE) on a picture: that chunk is then read
 * one image per process, and an image that still kills it counts as read as nothing.
 */
async function ocr(files, psm, alphabet) {
  const results = new Array(files.length).fill('')
  const indices = files.map((_, i) => i)
  const chunks = Array.from({ length: JOBS }, (_, j) => indices.filter((i) => i % JOBS === j))
  await Promise.all(
    chunks.map(async (chunk, j) => {
      if (!chunk.length) return
      const list = path.join(work, `list-${psm}-${j}.txt`)
      writeFileSync(list, chunk.map((i) => files[i]).join('\n') + '\n')
      try {
        // one page per image, each page's text ends with a form feed
        const pages = (await tesseract(list, psm, alphabet)).stdout.split('\f')
        chunk.forEach((i, k) => (results[i] = clean(pages[k] ?? '')))
      } catch {
        for (const i of chunk) {
          try {
            results[i] = clean((await tesseract(files[i], psm, alphabet)).stdout)
          } catch {
            results[i] = ''
          }
        }
      }
    }),
  )
  return results
}

const started = Date.now()
const set = await captchas()
const rows = []
const solvedByAny = new Set()
for (const [name, prep] of Object.entries(PREPROCESS)) {
  const files = set.map((c, i) => {
    const f = path.join(work, `${Object.keys(PREPROCESS).indexOf(name)}-${i}.png`)
    writeFileSync(f, prep(c))
    return f
  })
  if (SAMPLES) {
    mkdirSync(SAMPLES, { recursive: true })
    set.slice(0, 6).forEach((c, i) => writeFileSync(path.join(SAMPLES, `${i}-${c.answer}-${Object.keys(PREPROCESS).indexOf(name)}.png`), prep(c)))
  }
  for (const psm of PSM) {
    const read = await ocr(files, psm, set[0].alphabet)
    let exact = 0
    let chars = 0
    read.forEach((text, i) => {
      const answer = set[i].answer
      if (text === answer) {
        exact++
        solvedByAny.add(i)
      }
      for (let k = 0; k < answer.length; k++) if (text[k] === answer[k]) chars++
    })
    rows.push({ name, psm, exact, chars, examples: read.slice(0, 4).map((t, i) => `${set[i].answer}→${t || '∅'}`).join(' ') })
  }
}

const pct = (x, n) => `${((100 * x) / n).toFixed(1)} %`
console.log(`# captcha OCR, ${new Date().toISOString().slice(0, 10)}: ${SVG_REF ? `SVG renderer of ${SVG_REF} rasterized by Chromium` : 'PNG renderer (src/captcha/image.ts)'}`)
console.log(`# ${tesseractVersion}, LSTM engine, eng, whitelist of the captcha alphabet, N = ${N}, ${((Date.now() - started) / 1000).toFixed(0)} s`)
console.log('| preprocessing | --psm | exact match | characters right (by position) | first four (answer→read) |')
console.log('| --- | ---: | ---: | ---: | --- |')
for (const r of rows) console.log(`| ${r.name} | ${r.psm} | ${pct(r.exact, N)} (${r.exact}) | ${pct(r.chars, N * 5)} | ${r.examples} |`)
console.log(`| any of the above | | ${pct(solvedByAny.size, N)} (${solvedByAny.size}) | | |`)
