namespace ZcProxy.Core.Configuration;

/// <summary>Why the config watcher looks at the files now.</summary>
internal enum ReloadCause
{
    /// <summary>SIGHUP: reload whether or not the files changed.</summary>
    Hangup,
    /// <summary>File-system events, then a quiet period without more: reload if the fingerprint moved.</summary>
    FileEvents,
    /// <summary>The poll interval passed without an event: the backstop check of the fingerprint.</summary>
    Poll,
}

/// <summary>
/// Turns wake-ups (file-system events from the watchers' threads, SIGHUP) into the config watcher's next look at the
/// files: SIGHUP at once; file events only after <see cref="QuietPeriod"/> without another one, because editors and
/// deploy tools write in bursts; otherwise every <see cref="PollInterval"/>. Timed by a <see cref="TimeProvider"/>, so
/// the debouncing is tested with a fake clock.
/// </summary>
internal sealed class ReloadSignal(TimeProvider time) : IDisposable
{
    public static readonly TimeSpan QuietPeriod = TimeSpan.FromMilliseconds(300);
    public static readonly TimeSpan PollInterval = TimeSpan.FromSeconds(2);

    private readonly SemaphoreSlim _wake = new(0);
    private volatile bool _hangup;

    public void FileChanged() => _wake.Release();

    public void Hangup()
    {
        _hangup = true;
        _wake.Release();
    }

    public async Task<ReloadCause> NextAsync(CancellationToken cancellationToken)
    {
        bool woken = await WaitAsync(PollInterval, cancellationToken).ConfigureAwait(false);
        if (woken && !_hangup)
        {
            // Let a burst settle: keep waiting while more events arrive within the quiet period, unless SIGHUP comes.
            while (!_hangup && await WaitAsync(QuietPeriod, cancellationToken).ConfigureAwait(false)) { }
        }
        if (_hangup)
        {
            _hangup = false;
            while (_wake.CurrentCount > 0 && _wake.Wait(0, CancellationToken.None)) { } // the reload reads every file: pending events are covered
            return ReloadCause.Hangup;
        }
        return woken ? ReloadCause.FileEvents : ReloadCause.Poll;
    }

    /// <summary>True when a wake-up came within <paramref name="timeout"/> of the clock.</summary>
    private async Task<bool> WaitAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (_wake.Wait(0, CancellationToken.None)) return true;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var wake = _wake.WaitAsync(Timeout.Infinite, stop.Token);
        var elapsed = Task.Delay(timeout, time, stop.Token);
        await Task.WhenAny(wake, elapsed).ConfigureAwait(false);
        stop.Cancel();
        try
        {
            return await wake.ConfigureAwait(false); // a wake-up at the same moment as the timeout still counts
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }

    public void Dispose() => _wake.Dispose();
}
