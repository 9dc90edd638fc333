// The portal's build: TypeScript in src/ -> ../static/ (index.html + hashed assets),
// which the function app serves at / and /assets/ (functions/portal.py).
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "/",
  build: {
    outDir: "../static",
    emptyOutDir: true,
    assetsDir: "assets",
    target: "es2022",
    // The modulepreload polyfill is for browsers older than the ones this targets.
    modulePreload: { polyfill: false },
  },
});
