// Vite `?raw` imports (docs checked by tests)
declare module '*?raw' {
  const content: string
  export default content
}
