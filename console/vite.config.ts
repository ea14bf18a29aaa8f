import { defineConfig } from 'vitest/config';

// No React plugin: esbuild compiles JSX with the automatic runtime, which is
// all the console needs (no fast refresh in development).
export default defineConfig({
  esbuild: { jsx: 'automatic' },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // The server sends a CSP without inline scripts: keep everything in files.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
    chunkSizeWarningLimit: 1024,
  },
  server: {
    // `npm run dev` against a local `berth serve` on port 5000.
    proxy: { '/api': 'http://127.0.0.1:5000', '/auth': 'http://127.0.0.1:5000', '/v2': 'http://127.0.0.1:5000' },
  },
  test: {
    include: ['test/**/*.test.ts', 'test/**/*.test.tsx'],
    environment: 'node',
  },
});
