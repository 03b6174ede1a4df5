namespace ZcProxy.Core.Configuration;

/// <summary>
/// The ZcProxy sections currently in force. Read <see cref="Current"/> per request (it is swapped
/// atomically on reload) so ZeroCopy and Cache settings apply without a restart.
/// </summary>
internal sealed class RuntimeOptions(ZcProxyOptions initial)
{
    private volatile ZcProxyOptions _current = initial;

    public ZcProxyOptions Current => _current;

    public event Action<ZcProxyOptions, ZcProxyOptions>? Changed;

    public void Update(ZcProxyOptions next)
    {
        var previous = _current;
        _current = next;
        Changed?.Invoke(previous, next);
    }
}
