/** Structured JSON logs: one object per line, always with the request id when there is one. */
export type LogFields = Record<string, unknown>

function emit(level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields: LogFields) {
  const line = JSON.stringify({ level, msg, time: new Date().toISOString(), ...fields })
  if (level === 'error') console.error(line)
  else if (level === 'warn') console.warn(line)
  else console.log(line)
}

export const log = {
  info: (msg: string, fields: LogFields = {}) => emit('info', msg, fields),
  warn: (msg: string, fields: LogFields = {}) => emit('warn', msg, fields),
  error: (msg: string, fields: LogFields = {}) => emit('error', msg, fields),
}
