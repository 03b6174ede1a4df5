using System.Runtime.InteropServices;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ZcProxy.Core.Configuration;

/// <summary>
/// Triggers reloads: SIGHUP always; file-system events after a quiet period (editors write in bursts);
/// and a periodic fingerprint check as a backstop for changes the events miss (timing: <see cref="ReloadSignal"/>).
/// </summary>
internal sealed partial class ConfigWatcher(FileConfigProvider provider, TimeProvider time, ILogger<ConfigWatcher> logger) : BackgroundService
{
    private readonly ReloadSignal _signal = new(time);
    private readonly List<FileSystemWatcher> _watchers = [];
    private string _fingerprint = "";
    private PosixSignalRegistration? _sighupRegistration;

    /// <summary>
    /// Takes the fingerprint and starts watching before the host reports started: since .NET 10 ExecuteAsync runs
    /// on the thread pool, and an edit made between "started" and a late ExecuteAsync would otherwise be missed.
    /// </summary>
    public override Task StartAsync(CancellationToken cancellationToken)
    {
        _fingerprint = ConfigFingerprint.Compute(provider.MainFile);
        _sighupRegistration = PosixSignalRegistration.Create(PosixSignal.SIGHUP, context =>
        {
            context.Cancel = true; // SIGHUP means reload, not hang-up
            _signal.Hangup();
        });
        WatchDirectories();
        return base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                var cause = await _signal.NextAsync(stoppingToken);
                if (cause == ReloadCause.Hangup)
                {
                    await ReloadAsync("SIGHUP");
                    continue;
                }
                var fingerprint = ConfigFingerprint.Compute(provider.MainFile);
                if (fingerprint != _fingerprint) await ReloadAsync("file change");
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                LogWatchFailed(e);
            }
        }
    }

    private async Task ReloadAsync(string reason)
    {
        _fingerprint = ConfigFingerprint.Compute(provider.MainFile);
        await provider.ReloadAsync(reason);
        WatchDirectories();
    }

    private void WatchDirectories()
    {
        var wanted = ConfigFingerprint.WatchedDirectories(provider.MainFile);
        if (_watchers.Select(w => w.Path).Order().SequenceEqual(wanted.Order())) return;
        foreach (var w in _watchers) w.Dispose();
        _watchers.Clear();
        foreach (var dir in wanted)
        {
            try
            {
                var w = new FileSystemWatcher(dir) { IncludeSubdirectories = true, NotifyFilter = NotifyFilters.FileName | NotifyFilters.DirectoryName | NotifyFilters.LastWrite | NotifyFilters.Size };
                w.Changed += (_, _) => _signal.FileChanged();
                w.Created += (_, _) => _signal.FileChanged();
                w.Deleted += (_, _) => _signal.FileChanged();
                w.Renamed += (_, _) => _signal.FileChanged();
                w.EnableRaisingEvents = true;
                _watchers.Add(w);
            }
            catch (Exception e) when (e is IOException or ArgumentException or UnauthorizedAccessException)
            {
                LogWatchFailed(e); // the periodic fingerprint check still catches changes
            }
        }
    }

    public override void Dispose()
    {
        _sighupRegistration?.Dispose();
        foreach (var w in _watchers) w.Dispose();
        _signal.Dispose();
        base.Dispose();
    }

    [LoggerMessage(EventId = 10, Level = LogLevel.Warning, Message = "config watching problem (changes are still polled every 2s)")]
    private partial void LogWatchFailed(Exception e);
}
