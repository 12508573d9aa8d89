import type { Config } from '../env'

export interface Brand {
  name: string
  logoUrl?: string
  primary: string
}

export const brandOf = (cfg: Config): Brand => ({ name: cfg.brandName, logoUrl: cfg.brandLogoUrl, primary: cfg.brandPrimaryColor })

function rgb(hex: string): [number, number, number] {
  const h = hex.slice(1)
  const full = h.length === 3 ? [...h].map((ch) => ch + ch).join('') : h
  return [0, 2, 4].map((i) => parseInt(full.slice(i, i + 2), 16)) as [number, number, number]
}

/** WCAG 2 relative luminance. */
function luminance(hex: string): number {
  const [r, g, b] = rgb(hex).map((v) => {
    const s = v / 255
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4
  })
  return 0.2126 * r + 0.7152 * g + 0.0722 * b
}

/** White or near-black text on the brand colour, whichever contrasts more. */
export function onColour(hex: string): string {
  const l = luminance(hex)
  return (1.05) / (l + 0.05) >= (l + 0.05) / (luminance('#111111') + 0.05) ? '#ffffff' : '#111111'
}

/** The pages' stylesheet, served from /page/assets/style.css (CSP allows styles from 'self' only). */
export function stylesheet(brand: Brand): string {
  return `:root{--primary:${brand.primary};--on-primary:${onColour(brand.primary)};--text:#1b1f24;--muted:#4f5863;--border:#8c959f;--bg:#eef1f5;--card:#fff;--error:#b3261e;--error-bg:#fdecea;--ok:#1e6b3a;--ok-bg:#e6f4ea}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{margin:0;min-height:100vh;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","PingFang SC","Microsoft YaHei",sans-serif;color:var(--text);background:var(--bg);display:flex;justify-content:center;align-items:flex-start;padding:3rem 1rem}
main{width:100%;max-width:26rem;background:var(--card);border-radius:12px;box-shadow:0 1px 3px rgba(0,0,0,.12),0 8px 24px rgba(0,0,0,.06);padding:2rem 1.75rem}
.brand{display:flex;align-items:center;gap:.6rem;font-weight:600;font-size:1.05rem;margin:0 0 1.5rem;color:var(--text)}
.brand img{height:32px;width:auto}
.brand .mark{display:inline-block;width:28px;height:28px;border-radius:8px;background:var(--primary)}
h1{font-size:1.5rem;line-height:1.25;margin:0 0 .5rem}
.lead{color:var(--muted);margin:0 0 1rem}
form{margin:0}
label{display:block;font-weight:600;margin:1.1rem 0 .35rem}
input[type=text],input[type=tel],input[type=password]{display:block;width:100%;font:inherit;padding:.7rem .8rem;border:1px solid var(--border);border-radius:8px;background:#fff;color:inherit;min-height:48px}
input[aria-invalid=true]{border:2px solid var(--error)}
:focus-visible{outline:3px solid var(--primary);outline-offset:2px}
input:focus-visible{outline-offset:0;border-color:var(--primary)}
.hint{color:var(--muted);font-size:.9rem;margin:.3rem 0 0}
.field-error{color:var(--error);font-size:.92rem;font-weight:600;margin:.35rem 0 0}
.alert,.notice{border-radius:8px;padding:.75rem 1rem;margin:0 0 1rem;border-left:4px solid}
.alert{background:var(--error-bg);border-color:var(--error);color:#5f1410}
.notice{background:var(--ok-bg);border-color:var(--ok);color:#0f3d20}
.alert:empty,.notice:empty{display:none}
button,.button{display:block;width:100%;margin-top:1.5rem;min-height:48px;padding:.7rem 1rem;font:inherit;font-weight:600;border-radius:8px;border:1px solid var(--primary);background:var(--primary);color:var(--on-primary);cursor:pointer;text-align:center;text-decoration:none}
button:hover,.button:hover{filter:brightness(1.08)}
button.secondary{background:transparent;color:var(--text);border-color:var(--border)}
button.link{display:inline;width:auto;min-height:0;margin:0;padding:0;border:0;background:none;color:var(--primary);font-weight:500;text-decoration:underline}
.captcha{margin-top:1.1rem}
.captcha .picture{display:flex;align-items:center;gap:.75rem;flex-wrap:wrap}
.captcha img{display:block;width:200px;max-width:100%;height:auto;border:1px solid var(--border);border-radius:8px;background:#fff}
.links{margin:1.5rem 0 0;padding:0;list-style:none;display:flex;flex-wrap:wrap;gap:.5rem 1.5rem;font-size:.95rem}
a{color:var(--primary);text-underline-offset:2px}
.who{font-size:1.1rem;margin:.5rem 0 0}
.who strong{overflow-wrap:anywhere}
.who+.hint{margin-top:0}
.app{display:flex;align-items:center;gap:.75rem;margin:1rem 0}
.app img{width:48px;height:48px;flex:none;border-radius:8px;object-fit:cover}
.app strong{display:block;overflow-wrap:anywhere}
.app .hint{margin:0}
.scopes{margin:.35rem 0 0;padding-left:1.25rem}
.scopes li{margin:.35rem 0}
.actions{display:flex;gap:.75rem;margin-top:1.5rem}
.actions button{margin-top:0;flex:1}
form+.hint{margin-top:1rem}
.divider{display:flex;align-items:center;gap:.75rem;color:var(--muted);font-size:.9rem;margin:1.5rem 0 0}
.divider::before,.divider::after{content:"";flex:1;border-top:1px solid #d0d7de}
.federation button{margin-top:.75rem}
.identities{list-style:none;padding:0;margin:1rem 0 0}
.identities li{display:flex;align-items:center;justify-content:space-between;gap:.75rem;padding:.75rem 0;border-top:1px solid #d0d7de}
.identities li strong{display:block;overflow-wrap:anywhere}
.identities li .hint{margin:0}
.identities form button{margin:0;width:auto;min-height:40px;padding:.4rem .9rem}
code{font-size:.9em;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;overflow-wrap:anywhere}
.wide{max-width:44rem}
.portal-nav ul{display:flex;flex-wrap:wrap;gap:.25rem .5rem;margin:0 0 1rem;padding:0 0 .75rem;list-style:none;border-bottom:1px solid var(--border)}
.portal-nav a{display:inline-block;padding:.35rem .6rem;border-radius:6px;text-decoration:none}
.portal-nav a[aria-current=page]{background:var(--primary);color:var(--on-primary)}
.portal-top{display:flex;flex-wrap:wrap;justify-content:space-between;gap:.5rem;font-size:.92rem;color:var(--muted);margin:0 0 .75rem}
.portal-top p{margin:0}
.lang{font-size:.92rem;margin:0 0 .5rem;text-align:right}
.portal-top .lang{margin:0}
.lang a[aria-current=true]{font-weight:700;text-decoration:none;color:var(--text)}
.cards{list-style:none;margin:1rem 0 0;padding:0;display:grid;gap:.75rem}
.cards>li{border:1px solid var(--border);border-radius:10px;padding:.85rem 1rem}
.cards .app{margin:0}
.cards a.app{text-decoration:none;color:inherit}
.cards a.app strong{color:var(--primary);text-decoration:underline}
.cards .app .mark{display:inline-block;width:48px;height:48px;flex:none;border-radius:8px;background:var(--primary)}
.cards dl{display:grid;grid-template-columns:max-content 1fr;gap:.15rem .75rem;margin:.5rem 0 0;font-size:.92rem}
.cards dt{color:var(--muted)}
.cards dd{margin:0;overflow-wrap:anywhere}
.cards form button{margin-top:.75rem;width:auto}
.tag{display:inline-block;margin-left:.5rem;padding:0 .45rem;border-radius:4px;background:var(--ok-bg);color:var(--ok);font-size:.85rem;font-weight:600}
h2{font-size:1.15rem;margin:1.75rem 0 .25rem}
.check{display:flex;gap:.5rem;align-items:center;margin-top:1rem}
.check input{width:1.2rem;height:1.2rem}
.check label{margin:0;font-weight:500}
input[type=email]{display:block;width:100%;font:inherit;padding:.7rem .8rem;border:1px solid var(--border);border-radius:8px;background:#fff;color:inherit;min-height:48px}
.activity{list-style:none;margin:.5rem 0 0;padding:0}
.activity li{padding:.5rem 0;border-bottom:1px solid #d8dde3}
.activity time,.activity .hint{display:block}
@media (max-width:480px){body{padding:0;background:var(--card)}main{box-shadow:none;border-radius:0;padding:1.5rem 1.25rem;min-height:100vh}}
@media (prefers-reduced-motion:no-preference){button,.button{transition:filter .15s}}
`
}
