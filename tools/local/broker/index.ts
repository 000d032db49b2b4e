export * from './broker';
export * from './esm';
export * from './partitioner';
