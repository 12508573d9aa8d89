/** The floor: a route that touches no binding, so this is the Worker + middleware alone. */
export default {
  name: 'bare route',
  route: 'GET /livez',
  order: 10,
  passes: ['default', 'api'],
  bare: true,
  requests: () => [{ method: 'GET', path: '/livez' }],
}
