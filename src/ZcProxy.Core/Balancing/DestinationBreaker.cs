using Polly;
using Polly.CircuitBreaker;

namespace ZcProxy.Core.Balancing;

/// <summary>
/// One destination's circuit breaker (nginx max_fails/fail_timeout), built on Polly's: it opens once, within the
/// last <c>FailTimeout</c>, at least <c>MaxFails</c> tries failed and they were at least <c>FailRatio</c> of the
/// destination's tries; it then keeps the destination out for <c>FailTimeout</c> and lets one trial request through
/// (half-open), whose outcome closes or re-opens it.
/// </summary>
internal sealed class DestinationBreaker
{
    private readonly ResiliencePipeline<bool> _pipeline;
    private readonly CircuitBreakerStateProvider _state = new();
    private readonly TimeProvider _time;
    private long _openUntilUtcTicks;
    private long _opened;

    public DestinationBreaker(int maxFails, double failRatio, TimeSpan failTimeout, TimeProvider time)
    {
        _time = time;
        MaxFails = maxFails;
        FailRatio = failRatio;
        FailTimeout = failTimeout;
        _pipeline = new ResiliencePipelineBuilder<bool> { TimeProvider = time }
            .AddCircuitBreaker(new CircuitBreakerStrategyOptions<bool>
            {
                FailureRatio = failRatio,
                // Polly counts tries, not failures: this many tries at this ratio are at least MaxFails failures.
                MinimumThroughput = Math.Max(2, (int)Math.Ceiling(maxFails / failRatio - 1e-9)),
                SamplingDuration = failTimeout,
                BreakDuration = failTimeout,
                StateProvider = _state,
                ShouldHandle = static args => ValueTask.FromResult(args.Outcome.Exception is null && args.Outcome.Result),
                OnOpened = args =>
                {
                    Interlocked.Exchange(ref _openUntilUtcTicks, (_time.GetUtcNow() + args.BreakDuration).UtcTicks);
                    Interlocked.Increment(ref _opened);
                    Opened?.Invoke();
                    return ValueTask.CompletedTask;
                },
                OnClosed = _ => { Closed?.Invoke(); return ValueTask.CompletedTask; },
            })
            .Build();
    }

    public int MaxFails { get; }
    public double FailRatio { get; }
    public TimeSpan FailTimeout { get; }
    public event Action? Opened;
    public event Action? Closed;

    public CircuitState State => _state.CircuitState;
    public long TimesOpened => Interlocked.Read(ref _opened);

    /// <summary>True while the breaker is open and its break has not elapsed: the destination must not be picked.</summary>
    public bool IsBlocking => _state.CircuitState is CircuitState.Open or CircuitState.Isolated
        && _time.GetUtcNow().UtcTicks < Interlocked.Read(ref _openUntilUtcTicks);

    /// <summary>Runs one attempt; <paramref name="attempt"/> returns true when it failed. Returns false when the breaker refused it.</summary>
    public async ValueTask<bool> TryExecuteAsync<TState>(Func<TState, ValueTask<bool>> attempt, TState state)
    {
        try
        {
            await _pipeline.ExecuteAsync(static (s, _) => s.attempt(s.state), (attempt, state), CancellationToken.None).ConfigureAwait(false);
            return true;
        }
        catch (BrokenCircuitException)
        {
            return false;
        }
    }
}
