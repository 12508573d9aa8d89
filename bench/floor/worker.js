// The workerd floor of `npm run bench`: a Worker that answers "ok" and nothing else, run by
// the same host (bench/worker-host.mjs) and measured the same way as UAP Edge. Its Worker
// CPU per request is what any Worker costs in this harness before it does anything.
export default {
  fetch() {
    return new Response('ok')
  },
}
