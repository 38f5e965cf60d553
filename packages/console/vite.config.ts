import { defineConfig } from "vite";

// Preact through esbuild/oxc's automatic JSX runtime: no framework plugin needed.
export default defineConfig({
  base: "/",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: { outDir: "dist", emptyOutDir: true, sourcemap: true, chunkSizeWarningLimit: 1200 },
  resolve: { alias: { react: "preact/compat", "react-dom": "preact/compat" } },
});
