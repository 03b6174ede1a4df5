namespace ZcProxy.Core.Balancing;

/// <summary>Where a destination's circuit breaker stands.</summary>
internal enum BreakerState
{
    /// <summary>Tries go through and are counted.</summary>
    Closed,
    /// <summary>The destination is kept out until the break (FailTimeout) has passed.</summary>
    Open,
    /// <summary>The break has passed: one trial try decides between closing and opening again.</summary>
    HalfOpen,
}

/// <summary>
/// One destination's circuit breaker, nginx's <c>max_fails</c>/<c>fail_timeout</c>: it opens once <c>MaxFails</c> tries
/// failed within a <c>FailTimeout</c> window (and, when <c>FailRatio</c> is set, they were at least that share of the
/// window's tries), keeps the destination out for <c>FailTimeout</c>, then lets one trial try through whose outcome
/// closes it or opens it again. Own code rather than Polly's breaker: Polly needs at least two tries in a window
/// (MinimumThroughput ≥ 2), so nginx's default of one failure cannot be expressed with it.
/// </summary>
internal sealed class DestinationBreaker(int maxFails, double? failRatio, TimeSpan failTimeout, TimeProvider time)
{
    private readonly object _lock = new();
    private BreakerState _state;
    private long _windowStart = -1; // TimeProvider timestamp; -1: no window yet
    private int _tries, _failures;
    private long _openUntilUtcTicks; // read without the lock by IsBlocking
    private bool _trialInFlight;
    private long _opened;

    public int MaxFails { get; } = maxFails;
    public double? FailRatio { get; } = failRatio;
    public TimeSpan FailTimeout { get; } = failTimeout;
    public event Action? Opened;
    public event Action? Closed;

    /// <summary>Open turns into HalfOpen once the break has passed (the next try is the trial).</summary>
    public BreakerState State
    {
        get
        {
            lock (_lock) return _state == BreakerState.Open && !BreakRunning() ? BreakerState.HalfOpen : _state;
        }
    }

    public long TimesOpened => Interlocked.Read(ref _opened);

    /// <summary>True while the breaker is open and its break has not passed: the destination must not be picked.</summary>
    public bool IsBlocking => BreakRunning();

    /// <summary>
    /// Runs one try through the breaker; <paramref name="attempt"/> returns true when it failed. Returns false when the
    /// breaker refused the try (open, or half-open with its trial in flight) without running it.
    /// </summary>
    public async ValueTask<bool> TryExecuteAsync<TState>(Func<TState, ValueTask<bool>> attempt, TState state)
    {
        if (!TryEnter(out bool trial)) return false;
        bool failed;
        try
        {
            failed = await attempt(state).ConfigureAwait(false);
        }
        catch
        {
            Abandon(trial);
            throw;
        }
        Record(failed, trial);
        return true;
    }

    /// <summary>
    /// The start of a try run by a caller's own await (the proxy's per-try step: no async frame of the breaker's): false when
    /// the breaker refuses it. A try entered ends with <see cref="Record"/> or, when it threw, <see cref="Abandon"/>.
    /// </summary>
    /// <param name="trial">The try is the half-open breaker's trial, whose outcome closes or opens it.</param>
    public bool TryEnter(out bool trial)
    {
        trial = false;
        lock (_lock)
        {
            if (_state == BreakerState.Closed) return true;
            if (BreakRunning() || _trialInFlight) return false;
            _state = BreakerState.HalfOpen;
            _trialInFlight = trial = true;
            return true;
        }
    }

    /// <summary>A try that ended without a verdict (it threw): when it was the trial, the next try is.</summary>
    public void Abandon(bool trial)
    {
        if (trial) lock (_lock) _trialInFlight = false;
    }

    private bool BreakRunning() => time.GetUtcNow().UtcTicks < Interlocked.Read(ref _openUntilUtcTicks);

    /// <summary>The outcome of a try entered with <see cref="TryEnter"/>.</summary>
    public void Record(bool failed, bool trial)
    {
        Action? changed = null;
        lock (_lock)
        {
            if (trial)
            {
                _trialInFlight = false;
                changed = failed ? Open() : Close();
            }
            else if (_state == BreakerState.Closed)
            {
                long now = time.GetTimestamp();
                if (_windowStart < 0 || time.GetElapsedTime(_windowStart, now) >= FailTimeout)
                {
                    _windowStart = now;
                    _tries = _failures = 0;
                }
                _tries++;
                if (failed && ++_failures >= MaxFails && (FailRatio is not { } ratio || _failures >= ratio * _tries - 1e-9))
                    changed = Open();
            }
            // A try that started before the breaker opened and ends after: the breaker has decided already.
        }
        changed?.Invoke();
    }

    private Action? Open()
    {
        _state = BreakerState.Open;
        Interlocked.Exchange(ref _openUntilUtcTicks, (time.GetUtcNow() + FailTimeout).UtcTicks);
        Interlocked.Increment(ref _opened);
        return Opened;
    }

    private Action? Close()
    {
        _state = BreakerState.Closed;
        Interlocked.Exchange(ref _openUntilUtcTicks, 0);
        _windowStart = -1;
        return Closed;
    }
}
