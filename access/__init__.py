"""The one layer through which every read on behalf of a user goes.

Every function takes the user's Scope first, so one-way visibility (a level sees
itself and below, never above or beside) is enforced here and nowhere else.
"""
