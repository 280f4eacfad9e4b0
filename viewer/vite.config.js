// Builds the viewer into appliance/web/viewer/dist, served by the console at /viewer/assets/ (appliance/web/viewer/views.py).
// Hashed file names, a manifest the page reads to name its entry, ES module workers, and the codecs'
// WASM files as separate assets. Nothing is fetched from a CDN: every byte comes from this build.
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/viewer/assets/',
  build: {
    outDir: '../appliance/web/viewer/dist',
    emptyOutDir: true,
    assetsDir: '',
    manifest: true,
    sourcemap: false,
    chunkSizeWarningLimit: 5000,
    rollupOptions: { input: 'src/main.js' },
  },
  worker: { format: 'es' },
  optimizeDeps: {
    exclude: ['@cornerstonejs/dicom-image-loader'],
    include: ['dicom-parser'],
  },
});
