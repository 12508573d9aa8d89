/** Structured JSON logs: one object per line, always with the request id when there is one. */
export type LogFields = Record<string, unknown>
type Level = 'debug' | 'info' | 'warn' | 'error'

const RANK: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 }
let minRank = RANK.info

/** LOG_LEVEL (debug | info | warn | error, default info); unknown values keep the default. */
export function setLogLevel(level: string | undefined) {
  minRank = RANK[(level ?? 'info').toLowerCase() as Level] ?? RANK.info
}

function emit(level: Level, msg: string, fields: LogFields) {
  if (RANK[level] < minRank) return
  const line = JSON.stringify({ level, msg, time: new Date().toISOString(), ...fields })
  if (level === 'error') console.error(line)
  else if (level === 'warn') console.warn(line)
  else console.log(line)
}

export const log = {
  debug: (msg: string, fields: LogFields = {}) => emit('debug', msg, fields),
  info: (msg: string, fields: LogFields = {}) => emit('info', msg, fields),
  warn: (msg: string, fields: LogFields = {}) => emit('warn', msg, fields),
  error: (msg: string, fields: LogFields = {}) => emit('error', msg, fields),
}
