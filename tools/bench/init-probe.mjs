// Child process of the init benchmark: imports one handler module and prints how long the import took (ms).
const file = process.argv[2];
const start = performance.now();
await import(file);
process.stdout.write(`${performance.now() - start}\n`);
process.exit(0);
