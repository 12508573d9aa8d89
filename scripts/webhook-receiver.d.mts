// Types of scripts/webhook-receiver.mjs for the TypeScript that imports it.
export interface ReceivedCall {
  at: number
  headers: Record<string, string | string[] | undefined>
  body: string
}
export interface SinkConfig {
  id?: string
  responses?: number[]
  status?: number
  delay_ms?: number
  location?: string
}
export interface Receiver {
  url: string
  port: number
  sinks: Map<string, { responses: number[]; status: number; delayMs: number; received: ReceivedCall[] }>
  close(): Promise<void>
}
export function startReceiver(opts?: { port?: number; host?: string }): Promise<Receiver>
export function createSink(receiverUrl: string, cfg?: SinkConfig): Promise<{ id: string; url: string }>
export function sinkReceived(receiverUrl: string, id: string): Promise<ReceivedCall[]>
