// CI: the committed dist/ is what the committed src/ compiles to. Rebuilds into a scratch
// directory with the pinned TypeScript and compares file by file.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const scratch = mkdtempSync(join(tmpdir(), "console-dist-"));
try {
  execFileSync(
    process.execPath,
    [join(root, "node_modules/typescript/bin/tsc"), "-p", join(root, "tsconfig.json"), "--outDir", scratch],
    { stdio: "inherit" },
  );
  const committed = readdirSync(join(root, "dist")).sort();
  const rebuilt = readdirSync(scratch).sort();
  const problems = [];
  for (const f of new Set([...committed, ...rebuilt])) {
    if (!committed.includes(f)) problems.push(`${f}: built but not committed in dist/`);
    else if (!rebuilt.includes(f)) problems.push(`${f}: in dist/ but no source builds it`);
    else if (!readFileSync(join(root, "dist", f)).equals(readFileSync(join(scratch, f)))) {
      problems.push(`${f}: differs from a rebuild of src/`);
    }
  }
  if (problems.length) {
    console.error(`console/dist is stale; run \`npm run build\` in ${root}:\n  ${problems.join("\n  ")}`);
    process.exit(1);
  }
  console.log(`console/dist matches a rebuild of src/ (${committed.length} files)`);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
