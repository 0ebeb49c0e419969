"""Words of the record page's collaboration: comments, mentions, follows, "log a call"."""

WORDS: dict[str, dict[str, str]] = {
    "follow": {"en": "Follow", "zh-CN": "关注", "zh-TW": "追蹤"},
    "unfollow": {"en": "Unfollow", "zh-CN": "取消关注", "zh-TW": "取消追蹤"},
    "log_call": {"en": "Log a call", "zh-CN": "记录通话", "zh-TW": "記錄通話"},
    "call_subject": {"en": "Call", "zh-CN": "电话", "zh-TW": "電話"},
    "add_comment": {"en": "Add a comment", "zh-CN": "添加评论", "zh-TW": "新增留言"},
    "comment_hint": {"en": "Write a comment… @name or @e-mail notifies a colleague",
                     "zh-CN": "写评论……用 @姓名 或 @邮箱 通知同事", "zh-TW": "撰寫留言……用 @姓名 或 @電子郵件 通知同事"},
    "post_comment": {"en": "Comment", "zh-CN": "发表评论", "zh-TW": "發表留言"},
    "tl_comment": {"en": "{who} commented", "zh-CN": "{who} 发表了评论", "zh-TW": "{who} 留言"},
}
