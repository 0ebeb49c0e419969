"""The UI's own words (not metadata labels) in every supported language.

Metadata labels come from the model (`obj.label(language)`, `field.label(language)`); these are
the words around them: buttons, headings, messages. A missing translation falls back to English,
and tests/test_web_strings.py fails on any id without zh-CN and zh-TW.
"""

from __future__ import annotations

LANGUAGES = ("en", "zh-CN", "zh-TW")
LANGUAGE_NAMES = {"en": "English", "zh-CN": "简体中文", "zh-TW": "繁體中文"}

STRINGS: dict[str, dict[str, str]] = {
    "app_name": {"en": "metacrm", "zh-CN": "metacrm", "zh-TW": "metacrm"},
    "home": {"en": "Home", "zh-CN": "首页", "zh-TW": "首頁"},
    "sign_in": {"en": "Sign in", "zh-CN": "登录", "zh-TW": "登入"},
    "sign_out": {"en": "Sign out", "zh-CN": "退出登录", "zh-TW": "登出"},
    "email": {"en": "E-mail", "zh-CN": "电子邮箱", "zh-TW": "電子郵件"},
    "password": {"en": "Password", "zh-CN": "密码", "zh-TW": "密碼"},
    "wrong_credentials": {"en": "Wrong e-mail or password.", "zh-CN": "邮箱或密码错误。",
                          "zh-TW": "電子郵件或密碼錯誤。"},
    "too_many_sign_ins": {"en": "Too many failed sign-ins. Wait {seconds} seconds and try again.",
                          "zh-CN": "登录失败次数过多，请等待 {seconds} 秒后重试。",
                          "zh-TW": "登入失敗次數過多，請等待 {seconds} 秒後重試。"},
    "inactive_account": {"en": "This account is not active.", "zh-CN": "此账号已停用。", "zh-TW": "此帳號已停用。"},
    "session_expired": {"en": "Your session has ended. Sign in again.", "zh-CN": "会话已结束，请重新登录。",
                        "zh-TW": "工作階段已結束，請重新登入。"},
    "csrf_failed": {"en": "This form is out of date. Reload the page and try again.",
                    "zh-CN": "表单已过期，请刷新页面后重试。", "zh-TW": "表單已過期，請重新整理頁面後再試。"},
    "language": {"en": "Language", "zh-CN": "语言", "zh-TW": "語言"},
    "objects": {"en": "Objects", "zh-CN": "对象", "zh-TW": "物件"},
    "menu": {"en": "Menu", "zh-CN": "菜单", "zh-TW": "選單"},
    "search": {"en": "Search", "zh-CN": "搜索", "zh-TW": "搜尋"},
    "new": {"en": "New", "zh-CN": "新建", "zh-TW": "新增"},
    "no_records": {"en": "No records to show.", "zh-CN": "没有可显示的记录。", "zh-TW": "沒有可顯示的記錄。"},
    "next_page": {"en": "Next page", "zh-CN": "下一页", "zh-TW": "下一頁"},
    "first_page": {"en": "First page", "zh-CN": "第一页", "zh-TW": "第一頁"},
    "list_view": {"en": "List view", "zh-CN": "列表视图", "zh-TW": "清單檢視"},
    "all_records": {"en": "All records", "zh-CN": "全部记录", "zh-TW": "全部記錄"},
    "yes": {"en": "Yes", "zh-CN": "是", "zh-TW": "是"},
    "no": {"en": "No", "zh-CN": "否", "zh-TW": "否"},
    "not_found": {"en": "Not found", "zh-CN": "未找到", "zh-TW": "找不到"},
    "not_found_detail": {"en": "There is nothing here, or you may not see it.",
                         "zh-CN": "此处没有内容，或您无权查看。", "zh-TW": "此處沒有內容，或您無權檢視。"},
    "error": {"en": "Something went wrong", "zh-CN": "出错了", "zh-TW": "發生錯誤"},
    "error_detail": {"en": "The server could not handle this request. It has been logged; try again.",
                     "zh-CN": "服务器无法处理此请求，已记录日志，请重试。",
                     "zh-TW": "伺服器無法處理此請求，已記錄日誌，請再試一次。"},
    "busy_detail": {"en": "The database is busy. Try again in a moment.", "zh-CN": "数据库繁忙，请稍后重试。",
                    "zh-TW": "資料庫忙碌中，請稍後再試。"},
    "welcome": {"en": "Welcome, {name}", "zh-CN": "欢迎，{name}", "zh-TW": "歡迎，{name}"},
    "bad_request": {"en": "This request could not be understood.", "zh-CN": "无法理解此请求。",
                    "zh-TW": "無法理解此請求。"},
}


def text(language: str, key: str, **params: object) -> str:
    """The UI string `key` in `language` (English when missing), with `{name}` parameters filled."""
    entry = STRINGS[key]
    template = entry.get(language) or entry["en"]
    return template.format(**params) if params else template


def pick_language(wanted: str | None, fallback: str = "en") -> str:
    """One of LANGUAGES for a stored or requested language tag (zh-Hant → zh-TW, zh → zh-CN)."""
    tag = (wanted or "").strip().lower()
    if tag.startswith("zh"):
        return "zh-TW" if tag in ("zh-tw", "zh-hk", "zh-mo", "zh-hant") or tag.startswith("zh-hant") else "zh-CN"
    if tag.startswith("en"):
        return "en"
    return fallback if fallback in LANGUAGES else "en"
