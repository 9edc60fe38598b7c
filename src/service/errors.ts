import { AgentError } from '../errors.js';

/** The `serve` data file could not be read, parsed or written. */
export class ServiceDataError extends AgentError {
  readonly code = 'PCA_SERVICE_DATA';
  constructor(
    message: string,
    readonly path: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
