/** One D1 query (`SELECT 1`): the floor for anything that touches D1. */
export default {
  name: 'health (D1)',
  route: 'GET /healthz',
  order: 15,
  requests: () => [{ method: 'GET', path: '/healthz' }],
}
