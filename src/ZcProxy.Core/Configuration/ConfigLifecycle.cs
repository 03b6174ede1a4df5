namespace ZcProxy.Core.Configuration;

/// <summary>
/// Reload notifications for whoever must tell the outside world (systemd's RELOADING=1/READY=1, STATUS=, logs).
/// Raised by the file config provider around every reload attempt (SIGHUP or a file change).
/// </summary>
internal sealed class ConfigLifecycle
{
    /// <summary>A reload attempt starts (before the files are read).</summary>
    public event Action? Reloading;

    /// <summary>A reload attempt ended: applied, or rejected with the old config still serving.</summary>
    public event Action<ConfigReloadOutcome>? Reloaded;

    public ConfigReloadOutcome? Last { get; private set; }

    public void OnReloading() => Reloading?.Invoke();

    public void OnReloaded(ConfigReloadOutcome outcome)
    {
        Last = outcome;
        Reloaded?.Invoke(outcome);
    }
}

/// <summary>Errors hold one line per problem ("file: $.json.path: reason"); empty when the config was applied.</summary>
internal sealed record ConfigReloadOutcome(bool Applied, int Routes, int Clusters, IReadOnlyList<string> Errors);
