import { resolve } from 'node:path';
import { defineConfig } from 'vite';

// Two pages: the planner (index.html, served at /) and the wall (wall.html, served at /wall).
export default defineConfig({
  base: '/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    chunkSizeWarningLimit: 2500,
    sourcemap: false,
    rollupOptions: { input: { index: resolve(import.meta.dirname, 'index.html'), wall: resolve(import.meta.dirname, 'wall.html') } },
  },
  server: {
    proxy: Object.fromEntries(['/auth', '/collections', '/styles', '/tiles', '/tileMatrixSets', '/rasters', '/conformance']
      .map((p) => [p, { target: process.env.TWIN_URL ?? 'http://127.0.0.1:8000', changeOrigin: true }])),
  },
});
