// Lambda API errors as the service sends them: the status, an `x-amzn-errortype` header
// and a JSON body whose fields are spelled per shape (the SDK reads `Message` for some
// shapes and `message` for others, as in its service model).

export type LambdaErrorType =
  | 'ResourceNotFoundException'
  | 'ResourceConflictException'
  | 'InvalidParameterValueException'
  | 'InvalidRequestContentException'
  | 'ValidationException'
  | 'RequestEntityTooLargeException'
  | 'TooManyRequestsException'
  | 'PreconditionFailedException'
  | 'UnknownOperationException'
  | 'ServiceException';

export type ThrottleReason =
  | 'ReservedFunctionConcurrentInvocationLimitExceeded'
  | 'ConcurrentInvocationLimitExceeded'
  | 'CallerRateLimitExceeded';

const STATUS: Record<LambdaErrorType, number> = {
  ResourceNotFoundException: 404,
  ResourceConflictException: 409,
  InvalidParameterValueException: 400,
  InvalidRequestContentException: 400,
  ValidationException: 400,
  RequestEntityTooLargeException: 413,
  TooManyRequestsException: 429,
  PreconditionFailedException: 412,
  UnknownOperationException: 404,
  ServiceException: 500,
};

/** Shapes whose message member is `Message` in the service model. */
const CAPITAL_MESSAGE = new Set<LambdaErrorType>(['ResourceNotFoundException', 'ServiceException']);

export class LambdaApiError {
  readonly status: number;
  constructor(
    readonly type: LambdaErrorType,
    readonly message: string,
    readonly reason?: ThrottleReason,
    readonly retryAfterSeconds?: number,
  ) {
    this.status = STATUS[type];
  }

  headers(): Record<string, string> {
    const h: Record<string, string> = { 'x-amzn-errortype': this.type };
    if (this.retryAfterSeconds !== undefined) h['retry-after'] = String(this.retryAfterSeconds);
    return h;
  }

  body(): Record<string, string> {
    // ValidationException is not in Lambda's model: the service sends only a message.
    if (this.type === 'ValidationException') return { message: this.message };
    const b: Record<string, string> = { Type: this.type === 'ServiceException' ? 'Service' : 'User' };
    b[CAPITAL_MESSAGE.has(this.type) ? 'Message' : 'message'] = this.message;
    if (this.reason) b.Reason = this.reason;
    return b;
  }
}

export function notFound(arn: string): LambdaApiError {
  return new LambdaApiError('ResourceNotFoundException', `Function not found: ${arn}`);
}

export function invalidParameter(message: string): LambdaApiError {
  return new LambdaApiError('InvalidParameterValueException', message);
}

/** The service's constraint-violation message for one member. */
export function validation(value: unknown, member: string, constraint: string): LambdaApiError {
  const shown = typeof value === 'string' ? value : JSON.stringify(value);
  return new LambdaApiError(
    'ValidationException',
    `1 validation error detected: Value '${shown}' at '${member}' failed to satisfy constraint: ${constraint}`,
  );
}

export function throttled(reason: ThrottleReason): LambdaApiError {
  return new LambdaApiError('TooManyRequestsException', 'Rate Exceeded.', reason, 1);
}
