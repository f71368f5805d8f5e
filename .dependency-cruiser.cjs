/**
 * The import rules of the layers (docs: /work/shared/STYLE.md "The shape we want"), checked by
 * test/architecture/imports.test.ts on every `npm test`.
 */
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-cycles',
      severity: 'error',
      comment: 'Import cycles make load order matter and hide which module owns what.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'core-stays-inside',
      severity: 'error',
      comment:
        'src/core is the product logic in plain TypeScript: it never imports the config, the composition root, SDK ' +
        'wrappers or function files (they import core, not the other way round).',
      from: { path: '^src/core/' },
      to: { path: ['^src/config\\.ts$', '^src/configSchema\\.ts$', '^src/runtime/', '^src/azure/', '^src/functions/', '^src/cli/'] },
    },
    {
      name: 'core-has-no-azure-sdk',
      severity: 'error',
      comment: 'SDK clients live in src/azure; core stays testable without them.',
      from: { path: '^src/core/' },
      to: { path: '^node_modules/@azure/' },
    },
    {
      name: 'storage-clients-in-azure',
      severity: 'error',
      comment: 'Storage SDK clients are built in src/azure (storage.ts); elsewhere in the app only their types are used.',
      from: { path: '^src/(?!azure/|cli/)' },
      to: { path: '^node_modules/@azure/(data-tables|storage-queue|storage-blob)/', dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'app-ignores-dev-code',
      severity: 'error',
      comment: 'The deployed package (src/) never imports the local host, tests or benchmarks.',
      from: { path: '^src/' },
      to: { path: ['^local/', '^test/', '^bench/'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^dist/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js', '.json'] },
  },
};
