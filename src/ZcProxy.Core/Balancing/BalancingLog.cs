using Microsoft.Extensions.Logging;

namespace ZcProxy.Core.Balancing;

/// <summary>The pool steps' log lines, with stable event ids.</summary>
internal static partial class BalancingLog
{
    [LoggerMessage(EventId = 6001, Level = LogLevel.Warning, Message = "cluster '{ClusterId}': no destination available ({Configured} configured: {Reasons})")]
    public static partial void NoDestination(ILogger logger, string clusterId, int configured, string reasons);

    [LoggerMessage(EventId = 6002, Level = LogLevel.Warning, Message = "cluster '{ClusterId}': no primary destination available, using backups")]
    public static partial void UsingBackups(ILogger logger, string clusterId);

    [LoggerMessage(EventId = 6003, Level = LogLevel.Information, Message = "cluster '{ClusterId}': primary destinations available again, backups released")]
    public static partial void BackupsReleased(ILogger logger, string clusterId);

    [LoggerMessage(EventId = 6004, Level = LogLevel.Information, Message = "{Method} {Path}: try {Try} to {ClusterId}/{DestinationId} failed ({Reason}), retrying on {NextId}")]
    public static partial void Retrying(ILogger logger, string method, string path, int @try, string clusterId, string destinationId, string reason, string nextId);

    [LoggerMessage(EventId = 6005, Level = LogLevel.Warning, Message = "cluster '{ClusterId}': destination '{DestinationId}' circuit breaker opened after {MaxFails} failures")]
    public static partial void BreakerOpened(ILogger logger, string clusterId, string destinationId, int maxFails);

    [LoggerMessage(EventId = 6006, Level = LogLevel.Information, Message = "cluster '{ClusterId}': destination '{DestinationId}' circuit breaker closed")]
    public static partial void BreakerClosed(ILogger logger, string clusterId, string destinationId);

    [LoggerMessage(EventId = 6007, Level = LogLevel.Warning, Message = "cluster '{ClusterId}': 503 for {Method} {Path}: {Reason}")]
    public static partial void Rejected(ILogger logger, string clusterId, string method, string path, string reason);
}
