/**
 * A rough "which device is this" from a User-Agent header, for people reviewing their own
 * sessions: browser and operating system names only. It is a hint for a human, never a
 * security decision (the header is whatever the client sent).
 */
export interface DeviceHint {
  browser: string | null
  os: string | null
}

// Order matters: Edge and Opera also say Chrome, Chrome also says Safari.
const BROWSERS: [RegExp, string][] = [
  [/\bEdg(?:e|A|iOS)?\//, 'Edge'],
  [/\bOPR\/|\bOpera\b/, 'Opera'],
  [/\bSamsungBrowser\//, 'Samsung Internet'],
  [/\bMicroMessenger\//, 'WeChat'],
  [/\bFirefox\/|\bFxiOS\//, 'Firefox'],
  [/\b(?:Headless)?Chrom(?:e|ium)\/|\bCriOS\//, 'Chrome'],
  [/\bVersion\/[\d.]+.*\bSafari\//, 'Safari'],
  [/\bcurl\//, 'curl'],
  [/\bnode\b|\bundici\b/i, 'Node.js'],
]
const SYSTEMS: [RegExp, string][] = [
  [/\bAndroid\b/, 'Android'],
  [/\biPhone\b|\biPad\b|\biPod\b/, 'iOS'],
  [/\bHarmonyOS\b/, 'HarmonyOS'],
  [/\bWindows\b/, 'Windows'],
  [/\bCrOS\b/, 'ChromeOS'],
  [/\bMac OS X\b|\bMacintosh\b/, 'macOS'],
  [/\bLinux\b/, 'Linux'],
]

export function deviceHint(userAgent: string | null | undefined): DeviceHint {
  const ua = (userAgent ?? '').slice(0, 512)
  const first = (table: [RegExp, string][]) => table.find(([re]) => re.test(ua))?.[1] ?? null
  return { browser: first(BROWSERS), os: first(SYSTEMS) }
}
